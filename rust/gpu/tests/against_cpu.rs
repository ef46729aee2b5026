//! The GPU engine against the CPU engine: the same network, weights and batches give the same
//! gradients, weights and logs, for every activation, loss, metric and optimizer it runs, on
//! sizes that are not multiples of the 16-wide tiles. Without a Vulkan adapter the tests pass
//! vacuously, unless `PYNN_REQUIRE_GPU=1` (as CI sets it with lavapipe installed).

mod common;

use common::gpu_present;
use pynn_core::cancel::Cancel;
use pynn_core::epoch::{self, SumsLayout};
use pynn_core::graph::GraphSpec;
use pynn_core::initializers::{Distribution, FanMode, Initializer};
use pynn_core::kernels::activation::Activation;
use pynn_core::kernels::conv::Padding;
use pynn_core::kernels::loss::Loss;
use pynn_core::kernels::pool::PoolKind;
use pynn_core::layers::{ActivationSpec, ConvSpec, DenseSpec, LayerSpec, PoolSpec, ReshapeSpec};
use pynn_core::metrics::Metric;
use pynn_core::network::Network;
use pynn_core::ops::{MergeOp, MergeSpec};
use pynn_core::optim::OptimizerSpec;
use pynn_core::rng::Rng;
use pynn_core::train::{Dataset, Logs, Next, OutputSpec, Progress, Trainer};
use pynn_gpu::{GpuError, GpuTrainer};

fn dense(units: usize, activation: Activation, seed: u64) -> LayerSpec {
    let mut spec = DenseSpec::new(units, activation, seed);
    // Biases away from zero, so that their gradients and the epilogue are tested too.
    spec.bias_initializer = Initializer::VarianceScaling {
        scale: 1.0,
        mode: FanMode::FanIn,
        distribution: Distribution::Uniform,
        seed: seed + 100,
    };
    LayerSpec::Dense(spec)
}

struct Case {
    specs: Vec<LayerSpec>,
    /// The per-sample input shape; `[input]` when empty.
    input_shape: Vec<usize>,
    input: usize,
    loss: Loss,
    metrics: Vec<Metric>,
    optimizer: OptimizerSpec,
}

impl Case {
    fn shape(&self) -> Vec<usize> {
        if self.input_shape.is_empty() {
            vec![self.input]
        } else {
            self.input_shape.clone()
        }
    }
}

fn data(case: &Case, n: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut rng = Rng::new(seed);
    let x: Vec<f32> = (0..n * case.input).map(|_| rng.normal(0.0, 1.0)).collect();
    let network = Network::new(&case.shape(), &case.specs).unwrap();
    let width = network.output_width();
    // Output rows: one per sample, or more where the output has more than one axis.
    let rows = n * network.output_size() / width;
    let y = match case.loss {
        Loss::SparseCategoricalCrossentropy { .. } => {
            (0..rows).map(|i| (i % width) as f32).collect()
        }
        Loss::CategoricalCrossentropy { .. } => (0..rows * width)
            .map(|i| ((i / width) % width == i % width) as u8 as f32)
            .collect(),
        Loss::BinaryCrossentropy { .. } => (0..rows * width)
            .map(|i| (i % 3 == 0) as u8 as f32)
            .collect(),
        _ => (0..rows * width).map(|_| rng.normal(0.0, 1.0)).collect(),
    };
    (x, y)
}

/// What judges a model of one output: `loss` and `metrics`.
fn one_output(loss: Loss, metrics: &[Metric]) -> Vec<OutputSpec> {
    vec![OutputSpec {
        loss: Some(loss),
        weight: 1.0,
        metrics: metrics.to_vec(),
    }]
}

/// How a GPU trainer of the case lays out its batch sums.
fn layout(case: &Case, network: &Network) -> SumsLayout {
    SumsLayout {
        outputs: one_output(case.loss, &case.metrics),
        rows_per_sample: vec![network.output_size() / network.output_width_of(0)],
    }
}

fn evaluate_on_gpu(
    gpu: &mut GpuTrainer,
    layout: &SumsLayout,
    data: &Dataset,
    batch: usize,
) -> Logs {
    let never = &mut |_: &Progress| Next::Continue;
    epoch::evaluate_on_device(gpu, layout, data, batch, never, Cancel::never()).unwrap()
}

/// The case's network and trainer on the CPU, and its GPU trainer holding the same weights.
fn engines(case: &Case) -> (Network, Trainer, GpuTrainer) {
    let network = Network::new(&case.shape(), &case.specs).unwrap();
    let trainer = Trainer::new(&network, case.loss, &case.optimizer, case.metrics.clone()).unwrap();
    let plan = network.device_plan();
    let outputs = one_output(case.loss, &case.metrics);
    let mut gpu = GpuTrainer::new(&plan, &outputs, &case.optimizer).unwrap();
    gpu.upload(network.weights(), &trainer.optimizer().state().unwrap(), 0)
        .unwrap();
    (network, trainer, gpu)
}

/// Trains the case for `epochs` on both engines from the same weights; returns the CPU's and
/// the GPU's change of the weights and last logs.
fn train_both(case: &Case, n: usize, batch: usize, epochs: usize) -> [(Vec<f32>, Logs); 2] {
    let (x, y) = data(case, n, 3);
    let dataset = Dataset::new(&x, &y, n);
    let (mut network, mut trainer, mut gpu) = engines(case);
    let start = network.weights().to_vec();
    let lr = trainer.optimizer().learning_rate();
    let (mut cpu_logs, mut gpu_logs) = (None, None);
    for epoch in 0..epochs as u64 {
        cpu_logs = Some(
            trainer
                .fit_epoch(
                    &mut network,
                    &dataset,
                    batch,
                    Some(epoch),
                    &mut |_| Next::Continue,
                    Cancel::never(),
                )
                .unwrap(),
        );
        gpu_logs = Some(
            epoch::fit_on_device(
                &mut gpu,
                &layout(case, &network),
                &dataset,
                (batch, Some(epoch), lr),
                &mut |_| Next::Continue,
                Cancel::never(),
            )
            .unwrap(),
        );
    }
    let state = gpu.download().unwrap();
    assert_eq!(state.iterations, trainer.optimizer().iterations());
    assert_eq!(
        state.slots.len(),
        trainer.optimizer().state().unwrap().len()
    );
    let gpu_weights = state.weights;
    let change = |w: &[f32]| -> Vec<f32> { w.iter().zip(&start).map(|(w, s)| w - s).collect() };
    [
        (change(network.weights()), cpu_logs.unwrap()),
        (change(&gpu_weights), gpu_logs.unwrap()),
    ]
}

/// Every value of `got` within `tolerance` times the largest value of `want`.
fn assert_close(what: &str, got: &[f32], want: &[f32], tolerance: f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(0.0f32, |m, w| m.max(w.abs()));
    assert!(scale > 0.0, "{what}: nothing changed");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tolerance * scale,
            "{what}[{i}]: GPU {g}, CPU {w} (largest {scale})"
        );
    }
}

fn check(case: Case, n: usize, batch: usize, epochs: usize, tolerance: f32) {
    let [(cpu_w, cpu_logs), (gpu_w, gpu_logs)] = train_both(&case, n, batch, epochs);
    assert_close("weight changes", &gpu_w, &cpu_w, tolerance);
    let relative = |a: f64, b: f64| (a - b).abs() <= tolerance as f64 * (1.0 + b.abs());
    assert!(
        relative(gpu_logs.loss, cpu_logs.loss),
        "loss: GPU {}, CPU {}",
        gpu_logs.loss,
        cpu_logs.loss
    );
    for (g, c) in gpu_logs.metrics.iter().zip(&cpu_logs.metrics) {
        assert!(relative(*g, *c), "metric: GPU {g}, CPU {c}");
    }
    assert_eq!(gpu_logs.batches, cpu_logs.batches);
}

#[test]
fn one_step_gives_the_cpu_gradients_for_every_activation() {
    if !gpu_present() {
        return;
    }
    let activations = [
        Activation::Linear,
        Activation::Relu,
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Elu,
        Activation::Selu,
        Activation::Gelu,
        Activation::Softplus,
        Activation::LeakyRelu,
        Activation::Silu,
    ];
    for activation in activations {
        let case = Case {
            specs: vec![dense(19, activation, 1), dense(5, Activation::Softmax, 2)],
            input_shape: vec![],
            input: 7,
            loss: Loss::CategoricalCrossentropy {
                from_logits: false,
                label_smoothing: 0.0,
            },
            metrics: vec![Metric::CategoricalAccuracy],
            optimizer: OptimizerSpec::sgd(0.1),
        };
        // One batch of 21 rows (not a multiple of 16): one step.
        let [(cpu_w, _), (gpu_w, _)] = train_both(&case, 21, 21, 1);
        eprintln!("{activation:?}");
        assert_close(
            &format!("{activation:?} weight changes"),
            &gpu_w,
            &cpu_w,
            1e-4,
        );
    }
}

#[test]
fn every_loss_and_metric_trains_as_on_the_cpu() {
    if !gpu_present() {
        return;
    }
    let losses = [
        (
            Loss::MeanSquaredError,
            Activation::Linear,
            Metric::Loss {
                loss: Loss::MeanAbsoluteError,
            },
        ),
        (
            Loss::MeanAbsoluteError,
            Activation::Tanh,
            Metric::Loss {
                loss: Loss::MeanSquaredError,
            },
        ),
        (
            Loss::BinaryCrossentropy {
                from_logits: false,
                label_smoothing: 0.1,
            },
            Activation::Sigmoid,
            Metric::BinaryAccuracy { threshold: 0.5 },
        ),
        (
            Loss::BinaryCrossentropy {
                from_logits: true,
                label_smoothing: 0.0,
            },
            Activation::Linear,
            Metric::BinaryAccuracy { threshold: 0.0 },
        ),
        (
            Loss::CategoricalCrossentropy {
                from_logits: true,
                label_smoothing: 0.2,
            },
            Activation::Linear,
            Metric::CategoricalAccuracy,
        ),
        (
            Loss::SparseCategoricalCrossentropy { from_logits: false },
            Activation::Softmax,
            Metric::SparseCategoricalAccuracy,
        ),
    ];
    for (loss, last, metric) in losses {
        let case = Case {
            specs: vec![dense(33, Activation::Relu, 3), dense(4, last, 4)],
            input_shape: vec![],
            input: 6,
            loss,
            metrics: vec![metric],
            optimizer: OptimizerSpec::adam(0.01),
        };
        eprintln!("{loss:?}");
        check(case, 70, 16, 3, 1e-3);
    }
}

#[test]
fn optimizers_follow_the_cpu_over_three_epochs() {
    if !gpu_present() {
        return;
    }
    let optimizers = [
        OptimizerSpec::sgd(0.05),
        OptimizerSpec::Sgd {
            learning_rate: 0.02,
            momentum: 0.9,
            nesterov: false,
        },
        OptimizerSpec::Sgd {
            learning_rate: 0.02,
            momentum: 0.9,
            nesterov: true,
        },
        OptimizerSpec::adam(0.003),
        OptimizerSpec::Rmsprop {
            learning_rate: 0.003,
            rho: 0.9,
            momentum: 0.0,
            epsilon: 1e-7,
            centered: false,
        },
        OptimizerSpec::Rmsprop {
            learning_rate: 0.002,
            rho: 0.8,
            momentum: 0.5,
            epsilon: 1e-7,
            centered: true,
        },
        OptimizerSpec::Adagrad {
            learning_rate: 0.05,
            initial_accumulator_value: 0.1,
            epsilon: 1e-7,
        },
        OptimizerSpec::Adam {
            learning_rate: 0.004,
            beta_1: 0.9,
            beta_2: 0.99,
            epsilon: 1e-7,
            amsgrad: true,
        },
    ];
    for optimizer in optimizers {
        let case = Case {
            specs: vec![
                LayerSpec::Reshape(ReshapeSpec {
                    target_shape: vec![-1],
                }),
                dense(40, Activation::Relu, 5),
                dense(17, Activation::Tanh, 6),
                dense(3, Activation::Softmax, 7),
            ],
            input_shape: vec![],
            input: 9,
            loss: Loss::SparseCategoricalCrossentropy { from_logits: false },
            metrics: vec![
                Metric::SparseCategoricalAccuracy,
                Metric::Loss {
                    loss: Loss::SparseCategoricalCrossentropy { from_logits: false },
                },
            ],
            optimizer: optimizer.clone(),
        };
        eprintln!("{optimizer:?}");
        check(case, 100, 30, 3, 1e-3);
    }
}

#[test]
fn unsupported_models_are_named() {
    if !gpu_present() {
        return;
    }
    let specs = [dense(2, Activation::Sigmoid, 1)];
    let sgd = OptimizerSpec::sgd(0.1);
    let metrics = [Metric::BinaryAccuracy { threshold: 0.5 }; 5];
    let loss = Loss::MeanSquaredError;
    let plan = Network::new(&[4], &specs).unwrap().device_plan();
    let error = GpuTrainer::new(&plan, &one_output(loss, &metrics), &sgd)
        .err()
        .unwrap();
    let expected = GpuError::Unsupported("more than 4 metrics for one output".into());
    assert_eq!(error, expected);
    assert!(error
        .to_string()
        .contains("does not run more than 4 metrics for one output yet"));
    // A merge of more inputs than the GPU's merges take.
    let graph = common::wide_merge(4);
    let plan = Network::from_graph(&graph).unwrap().device_plan();
    let error = GpuTrainer::new(&plan, &one_output(loss, &metrics[..1]), &sgd).err();
    let expected = GpuError::Unsupported("merges of more than 16 inputs".into());
    assert_eq!(error, Some(expected));
}

/// `Activation` layers as on the CPU: after a linear Dense (folded into its epilogue), after a
/// Dense with an activation of its own (a stage of its own), and as the output (the head).
#[test]
fn activation_layers_as_on_the_cpu() {
    if !gpu_present() {
        return;
    }
    let activation = |activation| LayerSpec::Activation(ActivationSpec { activation });
    let case = Case {
        specs: vec![
            dense(7, Activation::Linear, 1),
            activation(Activation::Tanh),
            dense(6, Activation::Relu, 2),
            activation(Activation::Sigmoid),
            dense(3, Activation::Linear, 3),
            activation(Activation::Softmax),
        ],
        input_shape: Vec::new(),
        input: 5,
        loss: Loss::CategoricalCrossentropy {
            from_logits: false,
            label_smoothing: 0.0,
        },
        metrics: vec![Metric::CategoricalAccuracy],
        optimizer: OptimizerSpec::adam(0.01),
    };
    check(case, 40, 16, 3, 1e-4);
}

/// Dense layers on the last axis of multi-axis inputs (Keras applies them row by row).
#[test]
fn dense_on_multi_axis_inputs_as_on_the_cpu() {
    if !gpu_present() {
        return;
    }
    let case = Case {
        specs: vec![
            conv(
                4,
                vec![3],
                vec![1],
                Padding::Same,
                vec![1],
                Activation::Relu,
                1,
            ),
            dense(5, Activation::Tanh, 2),
            dense(3, Activation::Softmax, 3),
        ],
        input_shape: vec![7, 2],
        input: 14,
        loss: Loss::CategoricalCrossentropy {
            from_logits: false,
            label_smoothing: 0.0,
        },
        metrics: vec![Metric::CategoricalAccuracy],
        optimizer: OptimizerSpec::adam(0.01),
    };
    let [(cpu_w, _), (gpu_w, _)] = train_both(&case, 9, 9, 1);
    assert_close("one step", &gpu_w, &cpu_w, 1e-4);
    check(case, 40, 16, 3, 1e-3);
}

fn conv(
    filters: usize,
    kernel: Vec<usize>,
    strides: Vec<usize>,
    padding: Padding,
    dilation: Vec<usize>,
    activation: Activation,
    seed: u64,
) -> LayerSpec {
    LayerSpec::Conv(ConvSpec {
        filters,
        kernel_size: kernel,
        strides,
        padding,
        dilation_rate: dilation,
        activation,
        use_bias: true,
        kernel_initializer: Initializer::VarianceScaling {
            scale: 1.0,
            mode: FanMode::FanAvg,
            distribution: Distribution::Uniform,
            seed,
        },
        bias_initializer: Initializer::VarianceScaling {
            scale: 1.0,
            mode: FanMode::FanIn,
            distribution: Distribution::Uniform,
            seed: seed + 100,
        },
        kernel_regularizer: None,
        bias_regularizer: None,
        activity_regularizer: None,
    })
}

fn pool(
    op: PoolKind,
    size: Vec<usize>,
    strides: Vec<usize>,
    padding: Padding,
    global: bool,
) -> LayerSpec {
    LayerSpec::Pool(PoolSpec {
        op,
        pool_size: size,
        strides,
        padding,
        global,
        keepdims: false,
    })
}

fn flatten() -> LayerSpec {
    LayerSpec::Reshape(ReshapeSpec {
        target_shape: vec![-1],
    })
}

/// Convolutions of every geometry (strides, dilation, "same" and causal padding, 1-D), max and
/// average pooling (overlapping windows, "same" padding, global) and dropout: one step each
/// gives the CPU's weight changes.
#[test]
fn convolutions_pooling_and_dropout_step_as_on_the_cpu() {
    if !gpu_present() {
        return;
    }
    let relu = Activation::Relu;
    let cases: Vec<(Vec<usize>, Vec<LayerSpec>)> = vec![
        // LeNet's layers on a small image.
        (
            vec![12, 12, 1],
            vec![
                conv(
                    6,
                    vec![5, 5],
                    vec![1, 1],
                    Padding::Valid,
                    vec![1, 1],
                    relu,
                    1,
                ),
                pool(PoolKind::Max, vec![2, 2], vec![2, 2], Padding::Valid, false),
                conv(
                    4,
                    vec![3, 3],
                    vec![1, 1],
                    Padding::Valid,
                    vec![1, 1],
                    relu,
                    2,
                ),
                flatten(),
                dense(5, Activation::Softmax, 3),
            ],
        ),
        // Strides, dilation, "same" padding, overlapping and padded average pooling.
        (
            vec![11, 9, 3],
            vec![
                conv(
                    5,
                    vec![3, 3],
                    vec![2, 1],
                    Padding::Same,
                    vec![1, 1],
                    Activation::Tanh,
                    4,
                ),
                pool(
                    PoolKind::Average,
                    vec![3, 3],
                    vec![2, 2],
                    Padding::Same,
                    false,
                ),
                conv(
                    3,
                    vec![2, 2],
                    vec![1, 1],
                    Padding::Valid,
                    vec![2, 2],
                    Activation::Elu,
                    5,
                ),
                flatten(),
                LayerSpec::Dropout(pynn_core::layers::DropoutSpec {
                    rate: 0.3,
                    noise_shape: None,
                    seed: 8,
                }),
                dense(5, Activation::Softmax, 6),
            ],
        ),
        // 1-D: causal padding, overlapping max pooling, global average pooling.
        (
            vec![20, 2],
            vec![
                conv(4, vec![3], vec![1], Padding::Causal, vec![2], relu, 7),
                pool(PoolKind::Max, vec![3], vec![2], Padding::Valid, false),
                conv(
                    6,
                    vec![2],
                    vec![1],
                    Padding::Same,
                    vec![1],
                    Activation::Sigmoid,
                    9,
                ),
                pool(PoolKind::Average, vec![], vec![], Padding::Valid, true),
                dense(5, Activation::Softmax, 10),
            ],
        ),
    ];
    for (shape, specs) in cases {
        let input: usize = shape.iter().product();
        let case = Case {
            specs,
            input_shape: shape.clone(),
            input,
            loss: Loss::SparseCategoricalCrossentropy { from_logits: false },
            metrics: vec![Metric::SparseCategoricalAccuracy],
            optimizer: OptimizerSpec::sgd(0.1),
        };
        eprintln!("{shape:?}");
        let [(cpu_w, _), (gpu_w, _)] = train_both(&case, 19, 19, 1);
        assert_close(&format!("{shape:?} weight changes"), &gpu_w, &cpu_w, 1e-4);
        check(case, 40, 16, 3, 1e-3);
    }
}

/// Inference and evaluation on the GPU: the CPU's outputs within 1e-5 relative, its loss and
/// metrics (Dropout inactive), on ragged batches.
#[test]
fn predict_and_evaluate_as_on_the_cpu() {
    if !gpu_present() {
        return;
    }
    let specs = vec![
        conv(
            5,
            vec![3, 3],
            vec![1, 1],
            Padding::Same,
            vec![1, 1],
            Activation::Relu,
            1,
        ),
        pool(PoolKind::Max, vec![2, 2], vec![2, 2], Padding::Valid, false),
        flatten(),
        LayerSpec::Dropout(pynn_core::layers::DropoutSpec {
            rate: 0.5,
            noise_shape: None,
            seed: 2,
        }),
        dense(7, Activation::Softmax, 3),
    ];
    let case = Case {
        specs,
        input_shape: vec![10, 10, 2],
        input: 200,
        loss: Loss::SparseCategoricalCrossentropy { from_logits: false },
        metrics: vec![Metric::SparseCategoricalAccuracy],
        optimizer: OptimizerSpec::adam(0.001),
    };
    let n = 45;
    let (x, y) = data(&case, n, 4);
    let (mut network, mut trainer, mut gpu) = engines(&case);
    let mut cpu = vec![0.0; n * network.output_size()];
    let never = Cancel::never();
    pynn_core::train::predict(
        &mut network,
        &x,
        n,
        16,
        &mut cpu,
        &mut |_| Next::Continue,
        never,
    )
    .unwrap();
    let mut out = vec![f32::NAN; cpu.len()];
    let never = &mut |_: &Progress| Next::Continue;
    let outs = &mut [&mut out[..]];
    epoch::predict_on_device(&mut gpu, (&[&x], n), 16, outs, never, Cancel::never()).unwrap();
    assert_eq!(out.len(), cpu.len());
    for (i, (&g, &c)) in out.iter().zip(&cpu).enumerate() {
        assert!(
            (g - c).abs() <= 1e-5 * c.abs().max(1e-3),
            "output {i}: GPU {g}, CPU {c}"
        );
    }
    let dataset = Dataset::new(&x, &y, n);
    let cpu_logs = trainer
        .evaluate(
            &mut network,
            &dataset,
            16,
            &mut |_| Next::Continue,
            Cancel::never(),
        )
        .unwrap();
    let gpu_logs = evaluate_on_gpu(&mut gpu, &layout(&case, &network), &dataset, 16);
    assert!((gpu_logs.loss - cpu_logs.loss).abs() <= 1e-5 * cpu_logs.loss.abs());
    assert_eq!(gpu_logs.metrics, cpu_logs.metrics);
    assert_eq!(gpu_logs.batches, 3);
}

/// Kernel and bias regularizers (L1, L2, both): their gradients in the steps and their value in
/// the loss, in training and in evaluation.
#[test]
fn weight_regularizers_as_on_the_cpu() {
    if !gpu_present() {
        return;
    }
    use pynn_core::regularizers::Regularizer;
    let mut first = conv(
        4,
        vec![3, 3],
        vec![1, 1],
        Padding::Valid,
        vec![1, 1],
        Activation::Relu,
        1,
    );
    if let LayerSpec::Conv(spec) = &mut first {
        spec.kernel_regularizer = Some(Regularizer { l1: 0.01, l2: 0.02 });
        spec.activity_regularizer = Some(Regularizer { l1: 0.0, l2: 0.01 });
    }
    let mut last = dense(3, Activation::Softmax, 2);
    if let LayerSpec::Dense(spec) = &mut last {
        spec.kernel_regularizer = Some(Regularizer { l1: 0.0, l2: 0.05 });
        spec.bias_regularizer = Some(Regularizer { l1: 0.03, l2: 0.0 });
        spec.activity_regularizer = Some(Regularizer { l1: 0.01, l2: 0.1 });
    }
    let case = Case {
        specs: vec![first, flatten(), last],
        input_shape: vec![6, 6, 1],
        input: 36,
        loss: Loss::SparseCategoricalCrossentropy { from_logits: false },
        metrics: vec![Metric::SparseCategoricalAccuracy],
        optimizer: OptimizerSpec::adam(0.01),
    };
    check(
        Case {
            ..case_clone(&case)
        },
        50,
        16,
        3,
        1e-3,
    );
    let (x, y) = data(&case, 30, 5);
    let (mut network, mut trainer, mut gpu) = engines(&case);
    let dataset = Dataset::new(&x, &y, 30);
    let cpu = trainer
        .evaluate(
            &mut network,
            &dataset,
            8,
            &mut |_| Next::Continue,
            Cancel::never(),
        )
        .unwrap();
    let on_gpu = evaluate_on_gpu(&mut gpu, &layout(&case, &network), &dataset, 8);
    assert!(
        (on_gpu.loss - cpu.loss).abs() <= 1e-5 * cpu.loss,
        "{} vs {}",
        on_gpu.loss,
        cpu.loss
    );
}

fn case_clone(case: &Case) -> Case {
    Case {
        specs: case.specs.clone(),
        input_shape: case.input_shape.clone(),
        input: case.input,
        loss: case.loss,
        metrics: case.metrics.clone(),
        optimizer: case.optimizer.clone(),
    }
}

/// A convolution with a relu, a Dense with a tanh, and a residual `Add` that the fusion gives
/// the relu after it: three fused ops, on images of 6x6x2.
fn fused_ops_graph() -> GraphSpec {
    use pynn_core::graph::{NodeSpec, TensorRef::*};
    let relu = LayerSpec::Activation(ActivationSpec {
        activation: Activation::Relu,
    });
    let same = conv(
        4,
        vec![3, 3],
        vec![1, 1],
        Padding::Same,
        vec![1, 1],
        Activation::Relu,
        1,
    );
    GraphSpec {
        inputs: vec![vec![6, 6, 2]],
        constants: Vec::new(),
        layers: vec![
            same,
            flatten(),
            dense(8, Activation::Tanh, 2),
            dense(8, Activation::Linear, 3),
            LayerSpec::Merge(MergeSpec::new(MergeOp::Add)),
            relu,
            dense(3, Activation::Softmax, 4),
        ],
        nodes: vec![
            NodeSpec::new(0, vec![Input(0)]),
            NodeSpec::new(1, vec![Node(0)]),
            NodeSpec::new(2, vec![Node(1)]),
            NodeSpec::new(3, vec![Node(2)]),
            NodeSpec::new(4, vec![Node(2), Node(3)]),
            NodeSpec::new(5, vec![Node(4)]),
            NodeSpec::new(6, vec![Node(5)]),
        ],
        outputs: vec![Node(6)],
    }
}

/// The fused kernels against their decompositions on the GPU (and both against the CPU):
/// two epochs of Adam end on the same weights.
#[test]
fn fused_kernels_train_as_their_decompositions() {
    if !gpu_present() {
        return;
    }
    let graph = fused_ops_graph();
    let network = Network::from_graph(&graph).unwrap();
    let loss = Loss::SparseCategoricalCrossentropy { from_logits: false };
    let outputs = one_output(loss, &[Metric::SparseCategoricalAccuracy]);
    let adam = OptimizerSpec::adam(0.01);
    let mut rng = Rng::new(8);
    let n = 40;
    let x: Vec<f32> = (0..n * 72).map(|_| rng.normal(0.0, 1.0)).collect();
    let y: Vec<f32> = (0..n).map(|i| (i % 3) as f32).collect();
    let data = Dataset::new(&x, &y, n);
    let layout = SumsLayout {
        outputs: outputs.clone(),
        rows_per_sample: vec![1],
    };
    let plan = network.device_plan();
    let mut cpu_network = Network::from_graph(&graph).unwrap();
    let mut trainer = Trainer::with_outputs(&cpu_network, outputs.clone(), &adam).unwrap();
    let slots = trainer.optimizer().state().unwrap();
    let fused = GpuTrainer::new(&plan, &outputs, &adam).unwrap();
    let decomposed = GpuTrainer::decomposing(&plan, &outputs, &adam).unwrap();
    // The convolution's relu, the first Dense's tanh and the merge's relu run on their own
    // (the softmax is the head's, the output layer runs linear).
    assert_eq!(decomposed.stage_count(), fused.stage_count() + 3);
    let mut results = Vec::new();
    for mut gpu in [fused, decomposed] {
        gpu.upload(network.weights(), &slots, 0).unwrap();
        for epoch in 0..2 {
            let batching = (16, Some(epoch), 0.01);
            let never = &mut |_: &Progress| Next::Continue;
            epoch::fit_on_device(&mut gpu, &layout, &data, batching, never, Cancel::never())
                .unwrap();
        }
        results.push(gpu.download().unwrap().weights);
    }
    for epoch in 0..2 {
        let never = &mut |_: &Progress| Next::Continue;
        trainer
            .fit_epoch(
                &mut cpu_network,
                &data,
                16,
                Some(epoch),
                never,
                Cancel::never(),
            )
            .unwrap();
    }
    let [fused, decomposed] = &results[..] else {
        unreachable!()
    };
    assert_ne!(fused, network.weights(), "it trained");
    assert_close("decomposed", decomposed, fused, 1e-5);
    assert_close("fused against the CPU", fused, cpu_network.weights(), 1e-4);
}
