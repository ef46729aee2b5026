//! `cargo bench -p pynn-core [-- NAME]`: sgemm as the reference, the iris network's products and
//! epoch, a whole LeNet training step, and LeNet's and W3's layers, timed as medians of repeated runs.
//! Prints GFLOP/s, and for the layers the percentage of the sgemm figure of the same run (the
//! 2048^3 sgemm runs without NAME; with one, e.g. `-- conv1`, only the named lines run).

use std::time::Instant;

use pynn_core::cancel::Cancel;
use pynn_core::initializers::Initializer;
use pynn_core::kernels::activation::Activation;
use pynn_core::kernels::conv::Padding;
use pynn_core::kernels::gemm::{matmul, Op};
use pynn_core::kernels::loss::Loss;
use pynn_core::kernels::pool::PoolKind;
use pynn_core::layers::{ConvSpec, DenseSpec, LayerSpec, PoolSpec};
use pynn_core::metrics::Metric;
use pynn_core::network::Network;
use pynn_core::optim::OptimizerSpec;
use pynn_core::parallel;
use pynn_core::train::{Dataset, Next, Trainer};

/// Median seconds of `runs` calls of `f`, after one warm-up call.
fn median_seconds(runs: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[runs / 2]
}

fn dense(units: usize, activation: Activation, seed: u64) -> LayerSpec {
    LayerSpec::Dense(DenseSpec::new(units, activation, seed))
}

/// Returns the GFLOP/s.
fn bench_gemm(m: usize, n: usize, k: usize, runs: usize) -> f64 {
    let a = vec![0.5f32; m * k];
    let b = vec![0.25f32; k * n];
    let mut c = vec![0.0f32; m * n];
    let seconds = median_seconds(runs, || {
        parallel::install(|| matmul(&a, Op::N, &b, Op::N, &mut c, m, n, k, false)).unwrap()
    });
    let gflops = 2.0 * (m * n * k) as f64 / seconds / 1e9;
    println!(
        "gemm {m}x{k} · {k}x{n}: {:.1} us, {gflops:.1} GFLOP/s",
        seconds * 1e6
    );
    gflops
}

fn bench_iris_epoch() {
    let specs = [
        dense(256, Activation::Relu, 1),
        dense(256, Activation::Relu, 2),
        dense(256, Activation::Relu, 3),
        dense(3, Activation::Softmax, 4),
    ];
    let mut network = Network::new(&[4], &specs).unwrap();
    let loss = Loss::CategoricalCrossentropy {
        from_logits: false,
        label_smoothing: 0.0,
    };
    let adam = OptimizerSpec::adam(0.001);
    let mut trainer =
        Trainer::new(&network, loss, &adam, vec![Metric::CategoricalAccuracy]).unwrap();
    let x: Vec<f32> = (0..600).map(|i| (i as f32 * 0.37).sin()).collect();
    let y: Vec<f32> = (0..450)
        .map(|i| ((i % 3) == (i / 3) % 3) as u8 as f32)
        .collect();
    let data = Dataset::new(&x, &y, 150);
    let seconds = median_seconds(50, || {
        parallel::install(|| {
            trainer
                .fit_epoch(
                    &mut network,
                    &data,
                    30,
                    Some(1),
                    &mut |_| Next::Continue,
                    Cancel::never(),
                )
                .unwrap();
        })
        .unwrap();
    });
    println!(
        "iris epoch (5 batches of 30, 4-256-256-256-3, Adam): {:.1} us",
        seconds * 1e6
    );
}

/// One layer's forward and backward, as GFLOP/s of its products and as a percentage of the
/// sgemm figure of the same run. `forward_flops` counts one image; the backward does the same
/// work for the kernel's gradient and, unless the layer comes first, again for the input's.
/// A layer that is not first sits behind a Reshape to its own shape so that its ∂x is computed.
fn bench_layer(
    name: &str,
    spec: LayerSpec,
    input_shape: &[usize],
    batch: usize,
    first: bool,
    forward_flops: f64,
    sgemm: Option<f64>,
) {
    let mut specs = vec![spec];
    if !first {
        let target_shape = input_shape.iter().map(|&d| d as i64).collect();
        specs.insert(
            0,
            LayerSpec::Reshape(pynn_core::layers::ReshapeSpec { target_shape }),
        );
    }
    let mut network = Network::new(input_shape, &specs).unwrap();
    let input: Vec<f32> = (0..batch * network.input_size())
        .map(|i| (i as f32 * 0.1).sin())
        .collect();
    network.input_mut(batch).unwrap().copy_from_slice(&input);
    let inference = median_seconds(20, || {
        parallel::install(|| network.forward(batch, false, Cancel::never()).map(drop))
            .unwrap()
            .unwrap();
    });
    let forward = median_seconds(20, || {
        parallel::install(|| network.forward(batch, true, Cancel::never()).map(drop))
            .unwrap()
            .unwrap();
    });
    let backward = median_seconds(20, || {
        parallel::install(|| {
            let (_, grad) = network.output_and_grad_mut(batch).unwrap();
            grad.fill(0.01);
            network.backward(batch, Cancel::never()).unwrap();
        })
        .unwrap()
    });
    let flops = forward_flops * batch as f64;
    let backward_flops = flops * if first { 1.0 } else { 2.0 };
    let rate = |flops: f64, seconds: f64| {
        let gflops = flops / seconds / 1e9;
        format!(
            "{:.2} ms, {gflops:.1} GFLOP/s{}",
            seconds * 1e3,
            sgemm.map_or(String::new(), |s| format!(
                " ({:.0} % of sgemm)",
                100.0 * gflops / s
            ))
        )
    };
    if flops == 0.0 {
        println!(
            "{name} batch {batch}: inference {:.2} ms, forward {:.2} ms, backward {:.2} ms",
            inference * 1e3,
            forward * 1e3,
            backward * 1e3
        );
    } else {
        println!(
            "{name} batch {batch}: inference {}, forward {}, backward {}, both {}",
            rate(flops, inference),
            rate(flops, forward),
            rate(backward_flops, backward),
            rate(flops + backward_flops, forward + backward)
        );
    }
}

fn conv(filters: usize, k: usize, padding: Padding) -> LayerSpec {
    LayerSpec::Conv(ConvSpec {
        filters,
        kernel_size: vec![k, k],
        strides: vec![1, 1],
        padding,
        dilation_rate: vec![1, 1],
        activation: Activation::Relu,
        use_bias: true,
        kernel_initializer: Initializer::VarianceScaling {
            scale: 1.0,
            mode: pynn_core::initializers::FanMode::FanAvg,
            distribution: pynn_core::initializers::Distribution::Uniform,
            seed: 7,
        },
        bias_initializer: Initializer::Zeros,
        kernel_regularizer: None,
        bias_regularizer: None,
        activity_regularizer: None,
    })
}

fn max_pool() -> LayerSpec {
    LayerSpec::Pool(PoolSpec {
        op: PoolKind::Max,
        pool_size: vec![2, 2],
        strides: vec![2, 2],
        padding: Padding::Valid,
        global: false,
        keepdims: false,
    })
}

/// LeNet-5's whole training step (Adam, batch 128), as the seed's chapter 6 trains it.
fn bench_lenet_step() {
    let specs = [
        conv(6, 5, Padding::Valid),
        max_pool(),
        conv(16, 5, Padding::Valid),
        max_pool(),
        LayerSpec::Reshape(pynn_core::layers::ReshapeSpec {
            target_shape: vec![-1],
        }),
        dense(120, Activation::Relu, 1),
        dense(84, Activation::Relu, 2),
        dense(10, Activation::Softmax, 3),
    ];
    let mut network = Network::new(&[32, 32, 1], &specs).unwrap();
    let loss = Loss::SparseCategoricalCrossentropy { from_logits: false };
    let mut trainer = Trainer::new(&network, loss, &OptimizerSpec::adam(0.001), vec![]).unwrap();
    let n = 1280;
    let x: Vec<f32> = (0..n * 1024).map(|i| ((i % 251) as f32) / 251.0).collect();
    let y: Vec<f32> = (0..n).map(|i| (i % 10) as f32).collect();
    let data = Dataset::new(&x, &y, n);
    let seconds = median_seconds(5, || {
        parallel::install(|| {
            trainer
                .fit_epoch(
                    &mut network,
                    &data,
                    128,
                    Some(1),
                    &mut |_| Next::Continue,
                    Cancel::never(),
                )
                .unwrap();
        })
        .unwrap();
    });
    println!(
        "lenet training step (batch 128, Adam): {:.2} ms",
        seconds / 10.0 * 1e3
    );
}

fn main() {
    // `cargo bench -p pynn-core -- lenet` runs only the lines whose name contains "lenet".
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_default();
    let wanted = |name: &str| name.contains(filter.as_str());
    println!("threads: {}", parallel::num_threads().unwrap());
    // The reference for the layers' percentages; left out when only one kernel is profiled.
    let sgemm = wanted("gemm").then(|| bench_gemm(2048, 2048, 2048, 5));
    if wanted("gemm") {
        bench_gemm(30, 256, 256, 200);
        bench_gemm(256, 256, 30, 200);
    }
    if wanted("iris") {
        bench_iris_epoch();
    }
    if wanted("lenet step") {
        bench_lenet_step();
    }
    let conv_flops =
        |pixels: usize, field: usize, filters: usize| 2.0 * (pixels * field * filters) as f64;
    let layers = [
        (
            "lenet conv1 32x32x1 -> 6@5x5",
            conv(6, 5, Padding::Valid),
            vec![32, 32, 1],
            128,
            true,
            conv_flops(28 * 28, 25, 6),
        ),
        (
            "lenet pool1 28x28x6",
            max_pool(),
            vec![28, 28, 6],
            128,
            false,
            0.0,
        ),
        (
            "lenet conv2 14x14x6 -> 16@5x5",
            conv(16, 5, Padding::Valid),
            vec![14, 14, 6],
            128,
            false,
            conv_flops(10 * 10, 150, 16),
        ),
        (
            "lenet dense 400 -> 120",
            dense(120, Activation::Relu, 1),
            vec![400],
            128,
            false,
            2.0 * 400.0 * 120.0,
        ),
        (
            "w3 conv 32x32x16 -> 32@3x3 same",
            conv(32, 3, Padding::Same),
            vec![32, 32, 16],
            64,
            false,
            conv_flops(32 * 32, 144, 32),
        ),
        (
            // 24 filters are not whole vectors of 16: the AVX2 tiles, even with AVX-512.
            "avx2 conv 32x32x16 -> 24@3x3 same",
            conv(24, 3, Padding::Same),
            vec![32, 32, 16],
            128,
            false,
            conv_flops(32 * 32, 144, 24),
        ),
        (
            "w4 conv 32x32x16 -> 16@3x3 same",
            conv(16, 3, Padding::Same),
            vec![32, 32, 16],
            128,
            false,
            conv_flops(32 * 32, 144, 16),
        ),
    ];
    for (name, spec, shape, batch, first, flops) in layers {
        if wanted(name) {
            bench_layer(name, spec, &shape, batch, first, flops, sgemm);
        }
    }
}
