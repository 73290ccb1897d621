//! Talking to a running daemon over its control API.

use std::path::Path;
use std::time::Duration;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, bail};
use busker::api::{Download, addr_path, token_path};
use busker::catalog::ContentId;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A running daemon's control API.
pub struct Remote {
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl Remote {
    /// Finds the daemon of a data directory, if one is running.
    pub fn detect(home: &Path) -> anyhow::Result<Option<Self>> {
        let Ok(addr) = std::fs::read_to_string(addr_path(home)) else { return Ok(None) };
        let addr: std::net::SocketAddr = addr.trim().parse().context("api.addr is damaged")?;
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err() {
            // A daemon that was killed leaves its address file behind.
            return Ok(None);
        }
        let token = std::fs::read_to_string(token_path(home)).with_context(|| {
            format!("a daemon runs at {addr} but its token {} is unreadable", token_path(home).display())
        })?;
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        Ok(Some(Self { base: format!("http://{addr}"), token: token.trim().to_string(), agent }))
    }

    fn answer<T: DeserializeOwned>(mut resp: ureq::http::Response<ureq::Body>) -> anyhow::Result<T> {
        let status = resp.status();
        if status == 401 {
            bail!("the daemon rejected our API token (api.token does not match the running daemon's)");
        }
        if !status.is_success() {
            let body: serde_json::Value = resp.body_mut().read_json().unwrap_or_default();
            bail!("{}", body["error"].as_str().unwrap_or("the daemon reported an error"));
        }
        Ok(resp.body_mut().with_config().limit(64 << 20).read_json()?)
    }

    /// GET a JSON resource.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let resp = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token))
            .call()?;
        Self::answer(resp)
    }

    /// POST a JSON body; the answer is a stream of bytes (audio).
    pub fn post_reader<B: Serialize>(&self, path: &str, body: &B) -> anyhow::Result<impl std::io::Read + use<B>> {
        let resp = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token))
            .send_json(body)?;
        if !resp.status().is_success() {
            let _: serde_json::Value = Self::answer(resp)?;
            bail!("the daemon sent no audio");
        }
        Ok(resp.into_body().into_reader())
    }

    /// POST a JSON body, read a JSON answer.
    pub fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> anyhow::Result<T> {
        let resp = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token))
            .send_json(body)?;
        Self::answer(resp)
    }
}

/// Percent-encodes a query value.
pub fn query(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl Remote {
    /// Runs `work` (a request that fetches content) while a progress bar on stderr follows
    /// every download the daemon has in flight (`GET /v1/downloads`, polled).
    pub fn with_download_bar<T: Send>(&self, work: impl FnOnce() -> T + Send) -> T {
        let bar = super::show::byte_bar("fetching");
        let done = AtomicBool::new(false);
        let out = std::thread::scope(|s| {
            s.spawn(|| {
                // Content that leaves the list has finished: it counts as whole.
                let mut seen: HashMap<ContentId, (u64, u64)> = HashMap::new();
                while !done.load(Ordering::Relaxed) {
                    if let Ok(list) = self.get::<Vec<Download>>("/v1/downloads") {
                        let now: HashMap<ContentId, (u64, u64)> =
                            list.into_iter().map(|d| (d.id, (d.have, d.total))).collect();
                        for (id, (have, total)) in seen.iter_mut() {
                            *have = now.get(id).map_or(*total, |n| n.0);
                        }
                        seen.extend(now);
                        bar.set_length(seen.values().map(|v| v.1).sum());
                        bar.set_position(seen.values().map(|v| v.0).sum());
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            });
            let out = work();
            done.store(true, Ordering::Relaxed);
            out
        });
        bar.finish_and_clear();
        out
    }
}
