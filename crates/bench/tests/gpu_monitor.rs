//! GPU monitoring through a fake NVML source, on a real run against the in-process simulator:
//! the GPU section and its energy per token follow from the readings the fake gave, computed by
//! hand here, and `gpu_results_file` gets the section alone.

use inferbench_bench::monitoring::{MonitorOptions, ServerMetrics};
use inferbench_bench::serving::Output;
use inferbench_bench::{Benchmark, RunOptions};
use inferbench_core::spec::{DatasetSpec, RunSpec};
use inferbench_monitor::{GpuInfo, GpuReading, GpuSource};
use std::sync::Arc;
use std::time::Duration;

/// Device 0 has an energy counter that grows 1,000 mJ per reading, and power cycling 100, 200,
/// 300 W; device 3 has no counter and a steady 50 W.
struct Fake {
    calls: [u64; 2],
}

impl GpuSource for Fake {
    fn devices(&self) -> Vec<GpuInfo> {
        vec![
            GpuInfo { index: 0, name: "Fake A".into(), memory_total: 80 << 30 },
            GpuInfo { index: 3, name: "Fake B".into(), memory_total: 16 << 30 },
        ]
    }

    fn read(&mut self, index: u32) -> Result<GpuReading, String> {
        let slot = usize::from(index != 0);
        let i = self.calls[slot];
        self.calls[slot] += 1;
        Ok(if index == 0 {
            GpuReading {
                power_w: [100.0, 200.0, 300.0][(i % 3) as usize],
                energy_mj: Some(5_000 + 1_000 * i),
                utilization_pct: 40.0,
                memory_used: 20 << 30,
                temperature_c: 60.0 + (i % 2) as f64,
                sm_clock_mhz: 1500.0,
            }
        } else {
            GpuReading {
                power_w: 50.0,
                energy_mj: None,
                utilization_pct: 10.0,
                memory_used: 4 << 30,
                temperature_c: 40.0,
                sm_clock_mhz: 900.0,
            }
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpu_section_from_a_fake_nvml() {
    let sim = Arc::new(inferbench_server::Simulator::new(inferbench_server::SimConfig { itl_ms: 10.0, ..Default::default() }).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(inferbench_server::serve(listener, sim, None, None, std::future::pending()));
    let mut spec = RunSpec::new(&url);
    (spec.backend, spec.dataset, spec.num_prompts, spec.max_concurrency) = ("vllm".into(), DatasetSpec::random(32, 40), Some(24), Some(4));
    let dir = tempfile::tempdir().unwrap();
    let gpu_file = dir.path().join("benchmark_results_gpu.json");
    let monitor = MonitorOptions {
        server_metrics: ServerMetrics::Off,
        host: false,
        gpu_interval: Duration::from_millis(50),
        gpu_source: Some(Arc::new(|only: Option<&[u32]>| {
            assert_eq!(only, None);
            Ok(Box::new(Fake { calls: [0, 0] }) as Box<dyn GpuSource>)
        })),
        gpu_results_file: Some(gpu_file.clone()),
        ..MonitorOptions::default()
    };
    let opts = RunOptions { monitor, output: Some(Output { dir: dir.path().into(), stem: "r".into() }), ..RunOptions::default() };
    let r = Benchmark::serving(spec, opts).unwrap().run().await.unwrap();
    assert_eq!(r.summary.total_output_tokens, 24 * 40);
    let g = r.monitors.as_ref().and_then(|m| m.gpu.clone()).expect("a GPU section");
    let (a, b) = (&g.devices[0], &g.devices[1]);
    assert!(a.samples >= 3, "24 requests of 40 tokens at 10 ms: about 2.5 s, read every 50 ms: {}", a.samples);
    // Counter: 1,000 mJ a reading, so (n - 1) J over n readings.
    assert_eq!((a.energy_source.as_str(), a.energy_j), ("counter", (a.samples - 1) as f64));
    assert_eq!((a.peak_power_w, a.peak_memory_gib, a.peak_memory_pct, a.peak_temperature_c), (300.0, 20.0, 25.0, 61.0));
    assert_eq!((a.avg_utilization_pct, a.avg_sm_clock_mhz), (40.0, 1500.0));
    // No counter: 50 W held over the span the readings cover.
    assert_eq!(b.energy_source, "integrated");
    assert!((b.energy_j - 50.0 * g.duration_s).abs() < 1e-6 && (b.avg_power_w - 50.0).abs() < 1e-6, "{b:?}");
    assert_eq!((b.index, b.peak_memory_pct), (3, 25.0));
    let total = a.energy_j + b.energy_j;
    assert!((g.total_energy_j - total).abs() < 1e-9);
    let per_token = total / (24.0 * 40.0);
    assert!((g.joules_per_output_token.unwrap() - per_token).abs() < 1e-12);
    assert!((g.output_tokens_per_joule.unwrap() - 1.0 / per_token).abs() < 1e-9);
    // The seed's file holds the section alone; the series has every reading.
    assert_eq!(std::fs::read(&gpu_file).unwrap(), serde_json::to_vec_pretty(&g).unwrap());
    let ts = std::fs::read_to_string(dir.path().join("r.timeseries.jsonl")).unwrap();
    let gpu_lines = ts.lines().filter(|l| l.contains("\"source\":\"gpu\"")).count() as u64;
    assert_eq!(gpu_lines, a.samples + b.samples);
}
