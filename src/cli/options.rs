//! Turning publish flags into library options.

use anyhow::{Context, bail};
use busker::catalog::model::{KNOWN_LICENCES, Split, Splits};
use busker::catalog::{ArtistKey, Licence, Uses};

pub fn licence_for(id: &str, uses: Option<&[String]>) -> anyhow::Result<Licence> {
    let known = Licence::known(id);
    let uses = match (uses, &known) {
        (Some(list), _) => {
            let mut u = Uses { stream: false, download: false, embed: false, remix: false, commercial: false };
            for item in list {
                match item.trim() {
                    "stream" => u.stream = true,
                    "download" => u.download = true,
                    "embed" => u.embed = true,
                    "remix" => u.remix = true,
                    "commercial" => u.commercial = true,
                    other => bail!("unknown use {other:?} (expected stream, download, embed, remix, commercial)"),
                }
            }
            u
        }
        (None, Some(l)) => l.uses,
        (None, None) => bail!("unknown licence {id:?}: use one of {} or give --uses", KNOWN_LICENCES.join(", ")),
    };
    Ok(Licence { id: known.map(|l| l.id).unwrap_or_else(|| id.to_string()), uses })
}

pub fn parse_splits(me: Option<ArtistKey>, args: &[String], referral: u16) -> anyhow::Result<Option<Splits>> {
    if args.is_empty() && referral == 0 {
        return Ok(None);
    }
    let me = me.context("this node has no artist key")?;
    let recipients = if args.is_empty() {
        vec![Split { key: me, bps: 10_000 }]
    } else {
        args.iter()
            .map(|a| {
                let (k, b) = a.split_once('=').with_context(|| format!("split {a:?} is not KEY=BPS"))?;
                let key = if k == "me" { me } else { k.parse().with_context(|| format!("split key {k:?}"))? };
                let bps = b.parse().with_context(|| format!("split share {b:?} is not a number of basis points"))?;
                Ok(Split { key, bps })
            })
            .collect::<anyhow::Result<_>>()?
    };
    let splits = Splits { recipients, referral_bps: referral };
    splits.validate()?;
    Ok(Some(splits))
}
