//! A session (`pynn_core::session`) switching between the CPU and the GPU: the weights and the
//! optimizer's state follow the model wherever it trains, and what the GPU does not run is
//! refused by name. Without a Vulkan adapter the tests pass vacuously, unless
//! `PYNN_REQUIRE_GPU=1` (as CI sets it with lavapipe installed).

mod common;

use common::gpu_present;
use pynn_core::cancel::Cancel;
use pynn_core::graph::GraphSpec;
use pynn_core::kernels::activation::Activation;
use pynn_core::kernels::loss::Loss;
use pynn_core::layers::{DenseSpec, LayerSpec};
use pynn_core::metrics::Metric;
use pynn_core::optim::OptimizerSpec;
use pynn_core::rng::Rng;
use pynn_core::session::{Device, Session};
use pynn_core::train::{Dataset, Next, OutputSpec, Progress};
use pynn_core::CoreError;
use pynn_gpu::GpuDevice;

const SAMPLES: usize = 96;

fn session() -> Session {
    weighted_session(1.0)
}

fn weighted_session(weight: f32) -> Session {
    let layers = [
        LayerSpec::Dense(DenseSpec::new(16, Activation::Tanh, 1)),
        LayerSpec::Dense(DenseSpec::new(3, Activation::Softmax, 2)),
    ];
    let mut session = Session::new(GraphSpec::chain(&[5], &layers)).unwrap();
    let output = OutputSpec {
        loss: Some(Loss::SparseCategoricalCrossentropy { from_logits: false }),
        weight,
        metrics: vec![Metric::SparseCategoricalAccuracy],
    };
    session
        .compile(vec![output], OptimizerSpec::adam(0.01))
        .unwrap();
    session
}

fn data() -> (Vec<f32>, Vec<f32>) {
    let mut rng = Rng::new(3);
    let x = (0..SAMPLES * 5).map(|_| rng.normal(0.0, 1.0)).collect();
    let y = (0..SAMPLES).map(|i| (i % 3) as f32).collect();
    (x, y)
}

/// Trains one epoch on each device of `plan` in turn; returns the weights and the optimizer's
/// step count, read on the CPU.
fn train(plan: &[Option<&dyn Device>]) -> (Vec<f32>, u64) {
    let (x, y) = data();
    let data = Dataset::new(&x, &y, SAMPLES);
    let mut session = session();
    for (epoch, &device) in plan.iter().enumerate() {
        let batching = (32, Some(epoch as u64));
        let logs = session
            .fit_epoch(
                device,
                &data,
                batching,
                &mut |_| Next::Continue,
                Cancel::never(),
            )
            .unwrap();
        assert!(logs.loss.is_finite());
    }
    let (network, trainer) = session.reading_trained().unwrap();
    (network.weights().to_vec(), trainer.optimizer().iterations())
}

#[test]
fn weights_and_optimizer_state_follow_the_model_between_devices() {
    if !gpu_present() {
        return;
    }
    let gpu: &dyn Device = &GpuDevice;
    let (cpu_weights, cpu_steps) = train(&[None, None, None]);
    for plan in [[None, Some(gpu), None], [Some(gpu), None, Some(gpu)]] {
        let (weights, steps) = train(&plan);
        assert_eq!(steps, cpu_steps);
        for (a, b) in weights.iter().zip(&cpu_weights) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }
}

#[test]
fn a_weighted_loss_trains_as_on_the_cpu() {
    if !gpu_present() {
        return;
    }
    let (x, y) = data();
    let data = Dataset::new(&x, &y, SAMPLES);
    let train = |device: Option<&dyn Device>| {
        let mut session = weighted_session(0.25);
        let after = &mut |_: &Progress| Next::Continue;
        let logs = session
            .fit_epoch(device, &data, (32, Some(0)), after, Cancel::never())
            .unwrap();
        (logs.loss, session.reading().unwrap().weights().to_vec())
    };
    let ((cpu_loss, on_cpu), (gpu_loss, on_gpu)) = (train(None), train(Some(&GpuDevice)));
    assert!(
        (gpu_loss - cpu_loss).abs() < 1e-5 * cpu_loss.abs(),
        "{gpu_loss} vs {cpu_loss}"
    );
    for (a, b) in on_gpu.iter().zip(&on_cpu) {
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }
    // A quarter of the unweighted loss.
    let never = || Cancel::never();
    let unweighted = session()
        .evaluate(None, &data, 32, &mut |_| Next::Continue, never())
        .unwrap();
    let weighted = weighted_session(0.25)
        .evaluate(
            Some(&GpuDevice),
            &data,
            32,
            &mut |_| Next::Continue,
            never(),
        )
        .unwrap();
    assert!((weighted.loss - unweighted.loss / 4.0).abs() < 1e-6 * unweighted.loss);
}

#[test]
fn weights_set_on_the_cpu_reach_the_gpu_and_its_predictions() {
    if !gpu_present() {
        return;
    }
    let (x, _) = data();
    let mut session = session();
    let predict = |session: &mut Session, device: Option<&dyn Device>| {
        let mut out = vec![0.0; SAMPLES * 3];
        let outs: &mut [&mut [f32]] = &mut [&mut out];
        session
            .predict(
                device,
                (&[&x], SAMPLES),
                32,
                outs,
                &mut |_| Next::Continue,
                Cancel::never(),
            )
            .unwrap();
        out
    };
    // The GPU builds its copy, then the CPU side changes every weight.
    predict(&mut session, Some(&GpuDevice));
    let zeros = vec![0.0; session.network().weights().len()];
    session.changing().unwrap().set_weights(&zeros).unwrap();
    let on_gpu = predict(&mut session, Some(&GpuDevice));
    assert!(
        on_gpu.iter().all(|&p| (p - 1.0 / 3.0).abs() < 1e-6),
        "{:?}",
        &on_gpu[..3]
    );
    assert_eq!(predict(&mut session, None), on_gpu);
}

#[test]
fn frozen_layers_stay_on_the_gpu_and_the_rest_trains_as_on_the_cpu() {
    if !gpu_present() {
        return;
    }
    let (x, y) = data();
    let data = Dataset::new(&x, &y, SAMPLES);
    let train = |device: Option<&dyn Device>| {
        let mut session = session();
        session.set_trainable(&[false, true]).unwrap();
        let before = session.network().weights().to_vec();
        for epoch in 0..2 {
            let batching = (32, Some(epoch));
            let after = &mut |_: &Progress| Next::Continue;
            session
                .fit_epoch(device, &data, batching, after, Cancel::never())
                .unwrap();
        }
        (before, session.reading().unwrap().weights().to_vec())
    };
    let (before, on_cpu) = train(None);
    let (_, on_gpu) = train(Some(&GpuDevice));
    // The first Dense: 5 x 16 kernel and 16 biases, bit for bit as they were.
    let frozen = 5 * 16 + 16;
    assert_eq!(on_gpu[..frozen], before[..frozen]);
    assert_ne!(on_gpu[frozen..], before[frozen..]);
    for (a, b) in on_gpu.iter().zip(&on_cpu) {
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }
}

/// The two-headed residual graph trained one epoch on each device of `plan` in turn; returns
/// the weights and the last epoch's losses.
fn train_graph(plan: &[Option<&dyn Device>]) -> (Vec<f32>, Vec<f64>) {
    let (x, classes) = data();
    let values: Vec<f32> = x
        .chunks(5)
        .flat_map(|s| [s[0] + s[1], s[2] * s[3]])
        .collect();
    let data = Dataset {
        xs: vec![&x],
        ys: vec![&classes, &values],
        len: SAMPLES,
    };
    let mut session = Session::new(common::two_heads(5)).unwrap();
    let outputs = vec![
        OutputSpec {
            loss: Some(Loss::SparseCategoricalCrossentropy { from_logits: false }),
            weight: 1.0,
            metrics: vec![Metric::SparseCategoricalAccuracy],
        },
        OutputSpec {
            loss: Some(Loss::MeanSquaredError),
            weight: 0.5,
            metrics: vec![Metric::Loss {
                loss: Loss::MeanAbsoluteError,
            }],
        },
    ];
    session.compile(outputs, OptimizerSpec::adam(0.01)).unwrap();
    let mut losses = Vec::new();
    for (epoch, &device) in plan.iter().enumerate() {
        let batching = (16, Some(epoch as u64));
        let after = &mut |_: &Progress| Next::Continue;
        let logs = session
            .fit_epoch(device, &data, batching, after, Cancel::never())
            .unwrap();
        losses = [vec![logs.loss], logs.output_losses, logs.metrics].concat();
    }
    (session.reading().unwrap().weights().to_vec(), losses)
}

#[test]
fn a_graph_of_two_outputs_trains_across_devices_as_on_the_cpu() {
    if !gpu_present() {
        return;
    }
    let gpu: &dyn Device = &GpuDevice;
    let (cpu_weights, cpu_logs) = train_graph(&[None, None, None]);
    let (gpu_weights, gpu_logs) = train_graph(&[Some(gpu), None, Some(gpu)]);
    assert_eq!(
        cpu_logs.len(),
        5,
        "the loss, two output losses, two metrics"
    );
    for (g, c) in gpu_logs.iter().zip(&cpu_logs) {
        assert!((g - c).abs() <= 1e-5 * c.abs().max(1e-3), "{g} vs {c}");
    }
    for (g, c) in gpu_weights.iter().zip(&cpu_weights) {
        assert!((g - c).abs() <= 1e-4 * c.abs().max(1.0), "{g} vs {c}");
    }
}

#[test]
fn ctrl_c_stops_a_gpu_epoch_between_batches_keeping_the_steps_taken() {
    if !gpu_present() {
        return;
    }
    let (x, y) = data();
    let data = Dataset::new(&x, &y, SAMPLES);
    let mut session = session();
    let cancel = Cancel::new();
    let mut request_after_two = |p: &Progress| {
        if p.batches == 2 {
            cancel.request();
        }
        Next::Continue
    };
    let interrupted = session.fit_epoch(
        Some(&GpuDevice),
        &data,
        (16, None),
        &mut request_after_two,
        &cancel,
    );
    assert!(matches!(interrupted, Err(CoreError::Interrupted)));
    let (_, trainer) = session.reading_trained().unwrap();
    assert_eq!(
        trainer.optimizer().iterations(),
        2,
        "two of six batches ran"
    );
}

#[test]
fn what_the_gpu_does_not_run_is_named() {
    if !gpu_present() {
        return;
    }
    let graph = common::wide_merge(5);
    let mut session = Session::new(graph).unwrap();
    let output = OutputSpec {
        loss: Some(Loss::MeanSquaredError),
        weight: 1.0,
        metrics: Vec::new(),
    };
    session
        .compile(vec![output], OptimizerSpec::sgd(0.1))
        .unwrap();
    let why = session.unsupported_on(&GpuDevice).unwrap();
    assert_eq!(why.as_deref(), Some("merges of more than 16 inputs"));
    let (x, _) = data();
    let y = x.clone();
    let data = Dataset::new(&x, &y, SAMPLES);
    let refused = session.evaluate(
        Some(&GpuDevice),
        &data,
        32,
        &mut |_| Next::Continue,
        Cancel::never(),
    );
    assert!(matches!(refused, Err(CoreError::Unsupported(_))));
}
