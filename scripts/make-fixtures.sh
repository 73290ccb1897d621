#!/usr/bin/env bash
# Regenerates the audio fixtures in tests/fixtures/.
#
# Every fixture is synthesised here (sox plucked-string melodies over a bass
# line), so the project owns all of its test audio outright. Running the script
# again rewrites the same files; it is safe to run repeatedly.
#
# Usage: scripts/make-fixtures.sh        (from anywhere; needs root or sudo
#                                         only if the tools are missing)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/tests/fixtures"
RATE=44100
ARTIST="The Loopback Trio"
ALBUM="Localhost Sessions"

log() { printf '[make-fixtures] %s\n' "$*" >&2; }

# ---------------------------------------------------------------------------
# 1. Tools
# ---------------------------------------------------------------------------
need_install=0
for tool in sox soxi lame flac metaflac oggenc vorbiscomment ffmpeg ffprobe; do
    command -v "$tool" >/dev/null 2>&1 || need_install=1
done

if [ "$need_install" = 1 ]; then
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    # Wait for the dpkg/apt locks instead of failing if apt is busy elsewhere.
    APT_OPTS=(-o DPkg::Lock::Timeout=900 -y -q)
    PKGS=(sox lame flac vorbis-tools ffmpeg)
    log "installing ${PKGS[*]}"
    if ! $SUDO apt-get "${APT_OPTS[@]}" install --no-install-recommends "${PKGS[@]}"; then
        log "install failed; running apt-get update and retrying"
        $SUDO apt-get "${APT_OPTS[@]}" update
        $SUDO apt-get "${APT_OPTS[@]}" install --no-install-recommends "${PKGS[@]}"
    fi
fi

# ---------------------------------------------------------------------------
# 2. Synthesis helpers
# ---------------------------------------------------------------------------
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

# -R: repeatable (fixed PRNG seed for the pluck excitation), -D: no dither,
# so the output is bit-identical from run to run and silence stays silent.
SOX=(sox -R -D -V1)

# Sum of the durations in a "NOTE:SECONDS ..." list, to 6 decimals.
sum_durations() {
    local total=0 tok
    for tok in $1; do total="$(awk -v a="$total" -v b="${tok#*:}" 'BEGIN{printf "%.6f", a+b}')"; done
    printf '%s' "$total"
}

# Per-note synthesis. Both voices are Karplus-Strong plucks (sox `pluck`) with
# a logarithmic fade over the note and a low-pass filter: it sounds like a
# muted guitar and, unlike raw plucks, compresses well losslessly, which keeps
# the FLAC/ALAC fixtures small. Parameters after the note: 0 0 = no extra
# offset/phase, then sustain, tone-1, tone-2.
MELODY_VOICE=(pluck NOTE 0 0 40 10 50 fade l 0.004 DUR DUR lowpass 2500)
BASS_VOICE=(pluck NOTE 0 0 60 10 50 fade l 0.01 DUR DUR lowpass 1000)

# render_line OUT.wav VOICE "NOTE:SECONDS ..."
# Concatenates the notes (mono) into OUT.wav; VOICE is MELODY or BASS.
render_line() {
    local out="$1" voice="$2" notes="$3" i=0 tok note dur parts=() part arg
    local -n tmpl="${voice}_VOICE"
    for tok in $notes; do
        note="${tok%%:*}"
        dur="${tok#*:}"
        i=$((i + 1))
        part="$(printf '%s.%03d.wav' "$out" "$i")"
        local args=()
        for arg in "${tmpl[@]}"; do
            arg="${arg//NOTE/$note}"
            args+=("${arg//DUR/$dur}")
        done
        "${SOX[@]}" -n -r "$RATE" -b 16 -c 1 "$part" synth "$dur" "${args[@]}"
        parts+=("$part")
    done
    "${SOX[@]}" "${parts[@]}" "$out"
    rm -f "${parts[@]}"
}

# render NAME SECONDS CHANNELS "MELODY" "BASS"
# Writes $TMP/NAME.wav: melody panned left-of-centre, bass right-of-centre,
# normalised to -1 dBFS, exactly SECONDS long; downmixed if CHANNELS=1.
render() {
    local name="$1" secs="$2" chans="$3" melody="$4" bass="$5"
    local m b
    m="$(sum_durations "$melody")"
    b="$(sum_durations "$bass")"
    if ! awk -v m="$m" -v b="$b" -v s="$secs" 'BEGIN{exit !(m==s && b==s)}'; then
        log "$name: melody ($m s) / bass ($b s) do not add up to $secs s"
        exit 1
    fi
    render_line "$TMP/$name.mel.wav" MELODY "$melody"
    render_line "$TMP/$name.bass.wav" BASS "$bass"
    local remix=(remix "1v0.65,2v0.35" "1v0.35,2v0.65")
    if [ "$chans" = 1 ]; then remix=(remix "1v0.5,2v0.5"); fi
    "${SOX[@]}" -M "$TMP/$name.mel.wav" "$TMP/$name.bass.wav" -b 16 "$TMP/$name.wav" \
        "${remix[@]}" gain -n -1
    rm -f "$TMP/$name.mel.wav" "$TMP/$name.bass.wav"
    local want got
    want="$(awk -v s="$secs" -v r="$RATE" 'BEGIN{printf "%d", s*r + 0.5}')"
    got="$(soxi -s "$TMP/$name.wav")"
    if [ "$want" != "$got" ]; then
        log "$name: expected $want samples, got $got"
        exit 1
    fi
}

# ---------------------------------------------------------------------------
# 3. The music (every note length is a whole number of samples at 44.1 kHz)
# ---------------------------------------------------------------------------
# Sunrise: C major arpeggios climbing, 0.3 s notes.
render sunrise 6.0 2 \
    "C4:0.3 E4:0.3 G4:0.3 C5:0.3 B4:0.3 G4:0.3 E4:0.3 G4:0.3 A4:0.3 F4:0.3
     C4:0.3 F4:0.3 G4:0.3 B4:0.3 D5:0.3 G5:0.3 E5:0.3 D5:0.3 C5:0.3 C5:0.3" \
    "C2:1.2 E2:1.2 F2:1.2 G2:1.2 C2:1.2"

# Tidewater: A minor rolling 6/8 figure, 0.35 s notes.
render tidewater 7.0 2 \
    "A3:0.35 C4:0.35 E4:0.35 A4:0.35 E4:0.35 C4:0.35 G3:0.35 B3:0.35 D4:0.35 G4:0.35
     D4:0.35 B3:0.35 F3:0.35 A3:0.35 C4:0.35 F4:0.35 C4:0.35 A3:0.35 E4:0.35 A4:0.35" \
    "A1:2.1 G1:2.1 F1:2.1 E2:0.7"

# Lanterns: G major pentatonic, quick 0.25 s notes.
render lanterns 5.0 2 \
    "D4:0.25 E4:0.25 G4:0.25 A4:0.25 B4:0.25 A4:0.25 G4:0.25 E4:0.25 D5:0.25 B4:0.25
     A4:0.25 G4:0.25 E4:0.25 G4:0.25 A4:0.25 B4:0.25 D5:0.25 E5:0.25 D5:0.25 B4:0.25" \
    "G2:2.0 E2:2.0 D2:1.0"

# Harbour: F major waltz, 0.4 s notes.
render harbour 4.0 2 \
    "F4:0.4 A4:0.4 C5:0.4 E5:0.4 C5:0.4 A4:0.4 Bb4:0.4 D5:0.4 F5:0.4 F5:0.4" \
    "F2:1.2 A2:1.2 Bb2:1.2 F2:0.4"

# Ember: E minor, dotted rhythm.
render ember 4.0 2 \
    "E4:0.2 E4:0.2 B4:0.4 A4:0.2 G4:0.2 F#4:0.4 E4:0.4
     D4:0.2 E4:0.2 F#4:0.2 G4:0.2 A4:0.4 B4:0.8" \
    "E2:2.0 D2:1.0 B1:1.0"

# No-Xing VBR: G blues line, 7.3 s.
render noxing 7.3 2 \
    "G3:0.3 Bb3:0.3 C4:0.3 C#4:0.3 D4:0.3 F4:0.3 G4:0.3 F4:0.3 D4:0.3 C4:0.3 Bb3:0.3 G3:0.3
     C4:0.3 Eb4:0.3 F4:0.3 F#4:0.3 G4:0.3 Bb4:0.3 C5:0.3 Bb4:0.3 G4:0.3 F4:0.3 D4:0.3 G4:0.4" \
    "G1:1.8 G1:1.8 C2:1.8 D2:1.5 G1:0.4"

# ---------------------------------------------------------------------------
# 4. Encode
# ---------------------------------------------------------------------------
mkdir -p "$OUT"
rm -f "$OUT"/01-sunrise.flac "$OUT"/02-tidewater.mp3 "$OUT"/03-lanterns.ogg \
      "$OUT"/04-harbour.m4a "$OUT"/05-ember.m4a "$OUT"/vbr-noxing.mp3 "$OUT"/fixtures.json

log "encoding FLAC"
flac -8 --silent --force \
    -T "TITLE=Sunrise" -T "TRACKNUMBER=1" -T "ARTIST=$ARTIST" -T "ALBUM=$ALBUM" \
    -o "$OUT/01-sunrise.flac" "$TMP/sunrise.wav"

log "encoding MP3 (VBR with Xing/LAME tag)"
lame --quiet -V 4 --id3v2-only \
    --tt "Tidewater" --tn 2 --ta "$ARTIST" --tl "$ALBUM" \
    "$TMP/tidewater.wav" "$OUT/02-tidewater.mp3"

log "encoding Ogg Vorbis"
oggenc --quiet -q 3 --serial 20240601 \
    -c "TITLE=Lanterns" -c "TRACKNUMBER=3" -c "ARTIST=$ARTIST" -c "ALBUM=$ALBUM" \
    -o "$OUT/03-lanterns.ogg" "$TMP/lanterns.wav"

FFMPEG=(ffmpeg -nostdin -hide_banner -loglevel error -y)
log "encoding AAC"
"${FFMPEG[@]}" -i "$TMP/harbour.wav" -map_metadata -1 \
    -c:a aac -b:a 96k \
    -metadata title="Harbour" -metadata track=4 \
    -metadata artist="$ARTIST" -metadata album="$ALBUM" \
    -fflags +bitexact -flags:a +bitexact \
    "$OUT/04-harbour.m4a"

log "encoding ALAC"
"${FFMPEG[@]}" -i "$TMP/ember.wav" -map_metadata -1 \
    -c:a alac \
    -metadata title="Ember" -metadata track=5 \
    -metadata artist="$ARTIST" -metadata album="$ALBUM" \
    -fflags +bitexact -flags:a +bitexact \
    "$OUT/05-ember.m4a"

log "encoding MP3 (VBR without Xing/LAME tag)"
# -t: do not write the Xing/Info (LAME) tag, so the duration of this VBR file
# cannot be read from a header and has to be found by scanning frames.
lame --quiet -V 2 -t "$TMP/noxing.wav" "$OUT/vbr-noxing.mp3"

# ---------------------------------------------------------------------------
# 5. Manifest
# ---------------------------------------------------------------------------
# entry FILE TITLE TRACK WAV CODEC  (TITLE/TRACK "null" for none)
entry() {
    local file="$1" title="$2" track="$3" wav="$4" codec="$5"
    local dur samples rate chans
    dur="$(soxi -D "$wav")"
    samples="$(soxi -s "$wav")"
    rate="$(soxi -r "$wav")"
    chans="$(soxi -c "$wav")"
    if [ "$title" != null ]; then title="\"$title\""; fi
    printf '    {\n'
    printf '      "file": "%s",\n' "$file"
    printf '      "title": %s,\n' "$title"
    printf '      "track": %s,\n' "$track"
    printf '      "duration_secs": %s,\n' "$dur"
    printf '      "duration_samples": %s,\n' "$samples"
    printf '      "sample_rate": %s,\n' "$rate"
    printf '      "channels": %s,\n' "$chans"
    printf '      "codec": "%s"\n' "$codec"
    printf '    }'
}

{
    printf '{\n'
    printf '  "generated_by": "scripts/make-fixtures.sh",\n'
    printf '  "artist": "%s",\n' "$ARTIST"
    printf '  "album": "%s",\n' "$ALBUM"
    printf '  "fixtures": [\n'
    entry 01-sunrise.flac   Sunrise   1    "$TMP/sunrise.wav"   flac;   printf ',\n'
    entry 02-tidewater.mp3  Tidewater 2    "$TMP/tidewater.wav" mp3;    printf ',\n'
    entry 03-lanterns.ogg   Lanterns  3    "$TMP/lanterns.wav"  vorbis; printf ',\n'
    entry 04-harbour.m4a    Harbour   4    "$TMP/harbour.wav"   aac;    printf ',\n'
    entry 05-ember.m4a      Ember     5    "$TMP/ember.wav"     alac;   printf ',\n'
    entry vbr-noxing.mp3    null      null "$TMP/noxing.wav"    mp3;    printf '\n'
    printf '  ]\n'
    printf '}\n'
} > "$OUT/fixtures.json"

cat > "$OUT/README.md" <<'EOF'
# Test fixtures

The audio files here were synthesised by `scripts/make-fixtures.sh` (plucked-string melodies over a bass line made with sox, then encoded with flac, lame, oggenc and ffmpeg), so they are the project's own and carry no third-party rights. `fixtures.json` lists, for each file, the expected title, track number, codec, sample rate, channels and the exact duration of the PCM it was encoded from (lossy files decode slightly longer because of encoder delay/padding, unless the decoder honours gapless info). `vbr-noxing.mp3` is deliberately a VBR MP3 without a Xing/Info header. To regenerate everything, run `bash scripts/make-fixtures.sh` from the repository root; it installs sox, lame, flac, vorbis-tools and ffmpeg with apt-get if they are missing and rewrites the files in place.
EOF

total="$(du -sk "$OUT" | cut -f1)"
log "tests/fixtures is ${total} KiB"
if [ "$total" -ge 1024 ]; then
    log "fixtures exceed 1 MiB"
    exit 1
fi
ls -l "$OUT" >&2
