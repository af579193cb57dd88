//! `inferbench api`: the HTTP API and dashboard in the foreground until Ctrl-C / SIGTERM; the
//! benchmark running then is stopped and marked interrupted (what it measured is written), and
//! queued ones wait for the next start.

use crate::args::ApiArgs;
use crate::usage;
use anyhow::Result;
use inferbench_api::{ApiError, Config};

/// Runs `inferbench api` until interrupted.
pub async fn run(a: ApiArgs) -> Result<()> {
    let host: std::net::IpAddr = match a.host.trim_start_matches('[').trim_end_matches(']') {
        "localhost" => std::net::Ipv4Addr::LOCALHOST.into(),
        h => h.parse().map_err(|_| usage(format!("invalid --host '{}': expected an IP address such as 127.0.0.1 or ::1", a.host)))?,
    };
    let store = match a.store.clone().or_else(inferbench_store::default_path) {
        Some(p) => p,
        None => return Err(usage("the API keeps its queue in the results store, which is off (INFERBENCH_STORE=off); pass --store PATH")),
    };
    inferbench_bench::proc::raise_nofile_limit();
    let cfg =
        Config { host, port: a.port, token: a.token.clone(), results_dir: a.result_dir.clone(), store, max_body_bytes: a.max_body_bytes };
    let running = match inferbench_api::start(cfg).await {
        Ok(r) => r,
        Err(ApiError::Refused(m)) => return Err(usage(m)),
        Err(e) => return Err(e.into()),
    };
    let url = running.url();
    outln!("inferbench API listening on {url}");
    outln!("  dashboard  {url}/");
    outln!("  routes     {url}/api/openapi.json");
    outln!("  results    {}/<id>/", a.result_dir.display());
    if a.token.is_some() {
        outln!("  every /api route needs Authorization: Bearer <token>");
    }
    if !running.interrupted.is_empty() {
        outln!("  marked interrupted (running when the last API process stopped): {}", running.interrupted.join(", "));
    }
    crate::serve::shutdown_signal().await;
    eprintln!("\nstopping: the running benchmark is stopped and written (marked interrupted); queued ones wait for the next start");
    running.shutdown().await?;
    Ok(())
}
