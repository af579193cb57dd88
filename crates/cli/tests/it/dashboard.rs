//! The dashboard in a real browser (headless Debian `chromium`, driven over the DevTools
//! protocol) against a real `inferbench api` process: a run launched from the form, its live
//! charts receiving points, its report after completion, two runs compared, a third cancelled
//! mid-way, the trend of the three. Screenshots go to `target/test-artefacts/dashboard-*.png`;
//! the assertions read what the page shows.

use crate::api::{call, json_of, Api};
use crate::cdp::Browser;
use crate::harness::machine_shared;
use crate::html::{artefacts, browser_or_skip};
use std::time::Duration;

const FORM: &str = "(() => {
  const set = (id, v) => { const e = document.getElementById(id); e.value = v; e.dispatchEvent(new Event('change')); };
  set('f-kind', 'run'); set('f-target', 'simulator');
  set('f-num_prompts', '60'); set('f-max_concurrency', '3'); set('f-input_len', '64'); set('f-output_len', '48');
  set('f-labels', 'from=dashboard');
  document.getElementById('launch-button').click();
  return true;
})()";

fn launch_from_form(b: &mut Browser, url: &str) -> String {
    b.goto(&format!("{url}/#/new"));
    b.wait_for("document.getElementById('launch-button')", Duration::from_secs(10));
    b.eval(FORM);
    b.wait_for("location.hash.startsWith('#/b/')", Duration::from_secs(10));
    b.eval("location.hash.slice(4)").as_str().unwrap().to_owned()
}

/// What the page shows has no placeholder leaking through (`null`, `undefined`, `NaN`).
fn clean(b: &mut Browser, where_: &str) {
    let text = b.eval("document.body.innerText").as_str().unwrap().to_owned();
    let words: Vec<&str> = text.split(|c: char| !c.is_alphanumeric()).collect();
    for bad in ["null", "undefined", "NaN"] {
        assert!(!words.contains(&bad), "{where_}: the page shows {bad}:\n{text}");
    }
    assert!(!text.contains("[object Object]"), "{where_}: the page shows [object Object]:\n{text}");
}

fn points(b: &mut Browser, chart: &str) -> u64 {
    b.eval(&format!("Number((document.getElementById('{chart}') || {{dataset: {{}}}}).dataset.points || 0)")).as_u64().unwrap()
}

#[test]
fn launch_watch_report_compare_cancel_and_trend_in_a_browser() {
    let Some(bin) = browser_or_skip() else { return };
    let _m = machine_shared();
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(dir.path(), &[]);
    let shots = artefacts();
    let mut b = Browser::launch(bin);

    // The list, empty, says how to start.
    b.goto(&format!("{}/", api.url));
    b.wait_for("document.querySelector('#runs') && document.body.innerText.includes('No benchmark yet')", Duration::from_secs(10));

    // 1. A run launched from the form; its live charts fill while it runs.
    let first = launch_from_form(&mut b, &api.url);
    b.wait_for("(Number(document.getElementById('chart-throughput')?.dataset.points) || 0) >= 3", Duration::from_secs(60));
    let live = b.eval("document.getElementById('progress-text').innerText").as_str().unwrap().to_owned();
    assert!(live.contains("completed") && live.contains("of 60"), "{live}");
    assert!(b.eval("document.querySelectorAll('#chart-ttft circle.point').length").as_u64().unwrap() >= 2);
    clean(&mut b, "dashboard-live.png");
    b.screenshot(&shots.join("dashboard-live.png"));
    // Done: the badge says so and the report is shown with its charts.
    b.wait_for("document.querySelector('#status [data-status]')?.dataset.status === 'done'", Duration::from_secs(60));
    b.wait_for("(document.getElementById('report')?.srcdoc || '').length > 1000", Duration::from_secs(20));
    b.wait_for("document.getElementById('report').contentDocument.body.innerText.includes('TTFT')", Duration::from_secs(10));
    assert!(b.eval("document.getElementById('report').contentDocument.querySelectorAll('svg').length").as_u64().unwrap() >= 3);
    let seen = points(&mut b, "chart-throughput");
    assert!(seen >= 3, "{seen}");
    clean(&mut b, "dashboard-report.png");
    b.screenshot(&shots.join("dashboard-report.png"));

    // 2. A second run of the same workload, then the two compared from the list.
    let second = launch_from_form(&mut b, &api.url);
    b.wait_for("document.querySelector('#status [data-status]')?.dataset.status === 'done'", Duration::from_secs(90));
    b.goto(&format!("{}/#/", api.url));
    b.wait_for("document.querySelectorAll('#runs input[type=checkbox]:not([disabled])').length >= 2", Duration::from_secs(10));
    b.eval(&format!(
        "document.querySelector('#runs input[data-id=\"{first}\"]').click(); document.querySelector('#runs input[data-id=\"{second}\"]').click(); \
         document.getElementById('compare-picked').click(); true"
    ));
    b.wait_for("document.querySelectorAll('#compare-table tr').length > 5", Duration::from_secs(30));
    let table = b.eval("document.getElementById('compare-table').innerText").as_str().unwrap().to_owned();
    assert!(table.contains("ttft_median") && table.contains("verdict"), "{table}");
    b.wait_for("(document.getElementById('compare-report')?.srcdoc || '').includes('<svg')", Duration::from_secs(30));
    clean(&mut b, "dashboard-compare.png");
    b.screenshot(&shots.join("dashboard-compare.png"));

    // 3. A third run cancelled mid-way: it stops, says cancelled, and keeps what it measured.
    let third = launch_from_form(&mut b, &api.url);
    b.wait_for("(Number(document.getElementById('chart-throughput')?.dataset.points) || 0) >= 2", Duration::from_secs(60));
    b.eval("document.getElementById('cancel').click(); true");
    b.wait_for("document.querySelector('#status [data-status]')?.dataset.status === 'cancelled'", Duration::from_secs(30));
    let (_, text) = call("GET", &format!("{}/api/v1/benchmarks/{third}", api.url), None, None);
    let job = json_of(&text);
    let kept = job["result"]["summary"]["completed"].as_u64().unwrap();
    assert!(kept > 0 && kept < 60, "{job}");
    b.wait_for("(document.getElementById('report')?.srcdoc || '').length > 1000", Duration::from_secs(20));
    clean(&mut b, "dashboard-cancelled.png");
    b.screenshot(&shots.join("dashboard-cancelled.png"));

    // 4. The trend of output throughput over the three stored runs.
    b.goto(&format!("{}/#/trends?metric=output_throughput", api.url));
    b.wait_for("(Number(document.getElementById('chart-trend')?.dataset.points) || 0) >= 3", Duration::from_secs(20));
    clean(&mut b, "dashboard-trend.png");
    b.screenshot(&shots.join("dashboard-trend.png"));

    // The list shows all three with their status.
    b.goto(&format!("{}/#/", api.url));
    b.wait_for("document.querySelectorAll('#runs tr[data-id]').length === 3", Duration::from_secs(10));
    let list = b.eval("document.getElementById('runs').innerText").as_str().unwrap().to_owned();
    assert_eq!(list.matches("done").count(), 2, "{list}");
    assert!(list.contains("cancelled"), "{list}");
    clean(&mut b, "dashboard-list.png");
    b.screenshot(&shots.join("dashboard-list.png"));
    assert!(b.errors.is_empty(), "the page reported errors: {:?}", b.errors);
}
