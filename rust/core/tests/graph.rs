//! Graphs beyond a chain: residual connections, shared layers, fan-out, merges of the same
//! tensor, frozen layers. Each gradient is checked against finite differences of Σ y·r, whose
//! gradient with respect to the output y is r.

use pynn_core::cancel::Cancel;
use pynn_core::graph::{ConstantSpec, GraphSpec, Mode, NodeSpec, TensorRef};
use pynn_core::kernels::activation::Activation;
use pynn_core::layers::{DenseSpec, DropoutSpec, LayerSpec};
use pynn_core::network::Network;
use pynn_core::ops::{ConcatenateSpec, MergeOp, MergeSpec};

fn dense(units: usize, activation: Activation, seed: u64) -> LayerSpec {
    let mut spec = DenseSpec::new(units, activation, seed);
    spec.bias_initializer = pynn_core::initializers::Initializer::RandomUniform {
        minval: -0.5,
        maxval: 0.5,
        seed: seed + 100,
    };
    LayerSpec::Dense(spec)
}

fn merge(op: MergeOp) -> LayerSpec {
    LayerSpec::Merge(MergeSpec::new(op))
}

fn call(layer: usize, inputs: &[TensorRef]) -> NodeSpec {
    NodeSpec::new(layer, inputs.to_vec())
}

use TensorRef::{Constant, Input, Node};

fn values(n: usize, seed: f32) -> Vec<f32> {
    (0..n).map(|i| ((i as f32 + seed) * 0.61).sin()).collect()
}

/// Σ y·r of a training forward.
fn objective(net: &mut Network, x: &[f32], r: &[f32], batch: usize) -> f64 {
    net.input_mut(batch).unwrap().copy_from_slice(x);
    let y = net.forward(batch, true, Cancel::never()).unwrap();
    y.iter().zip(r).map(|(&y, &r)| y as f64 * r as f64).sum()
}

/// The gradient buffer after a backward from ∂(Σ y·r)/∂y = r.
fn gradients(net: &mut Network, x: &[f32], r: &[f32], batch: usize) -> Vec<f32> {
    objective(net, x, r, batch);
    net.output_and_grad_mut(batch).unwrap().1.copy_from_slice(r);
    net.backward(batch, Cancel::never()).unwrap();
    net.grads().to_vec()
}

fn assert_gradients_match_finite_differences(spec: &GraphSpec, frozen: &[usize]) {
    let mut net = Network::from_graph(spec).unwrap();
    let mut trainable = vec![true; spec.layers.len()];
    frozen.iter().for_each(|&l| trainable[l] = false);
    net.set_trainable(&trainable).unwrap();
    let batch = 3;
    let x = values(batch * net.input_size(), 0.0);
    let r = values(batch * net.output_size(), 50.0);
    let grads = gradients(&mut net, &x, &r, batch);
    let weights = net.weights().to_vec();
    let frozen_ranges = frozen_weight_ranges(&net, spec, &trainable);
    for j in 0..weights.len() {
        if frozen_ranges.iter().any(|r| r.contains(&j)) {
            assert_eq!(grads[j], 0.0, "a frozen weight's gradient");
            continue;
        }
        let h = 1e-2;
        let mut shifted = weights.clone();
        shifted[j] = weights[j] + h;
        net.set_weights(&shifted).unwrap();
        let plus = objective(&mut net, &x, &r, batch);
        shifted[j] = weights[j] - h;
        net.set_weights(&shifted).unwrap();
        let minus = objective(&mut net, &x, &r, batch);
        let numeric = (plus - minus) / (2.0 * h as f64);
        assert!(
            (numeric - grads[j] as f64).abs() < 2e-3 * (1.0 + numeric.abs()),
            "weight {j}: finite differences {numeric}, backward {}",
            grads[j]
        );
    }
}

fn frozen_weight_ranges(
    net: &Network,
    spec: &GraphSpec,
    trainable: &[bool],
) -> Vec<std::ops::Range<usize>> {
    let mut start = 0;
    let mut ranges = Vec::new();
    for (layer, shapes) in net.layer_weight_shapes().iter().enumerate() {
        let len: usize = shapes.iter().map(|s| s.iter().product::<usize>()).sum();
        if !trainable[layer] {
            ranges.push(start..start + len);
        }
        start += len;
    }
    assert_eq!(spec.layers.len(), trainable.len());
    ranges
}

/// x → d0 → d1, then d0 + d1 → d2: a residual connection (d0's output feeds two nodes).
fn residual() -> GraphSpec {
    GraphSpec {
        inputs: vec![vec![4]],
        constants: Vec::new(),
        layers: vec![
            dense(5, Activation::Tanh, 1),
            dense(5, Activation::Tanh, 2),
            merge(MergeOp::Add),
            dense(3, Activation::Softmax, 3),
        ],
        nodes: vec![
            call(0, &[Input(0)]),
            call(1, &[Node(0)]),
            call(2, &[Node(0), Node(1)]),
            call(3, &[Node(2)]),
        ],
        outputs: vec![Node(3)],
    }
}

#[test]
fn a_residual_connection_adds_both_paths_gradients() {
    assert_gradients_match_finite_differences(&residual(), &[]);
}

#[test]
fn a_shared_layer_adds_the_gradients_of_its_calls() {
    // The same Dense(4) twice, then a head on a concatenation of both calls.
    let spec = GraphSpec {
        inputs: vec![vec![4]],
        constants: Vec::new(),
        layers: vec![
            dense(4, Activation::Tanh, 1),
            LayerSpec::Concatenate(ConcatenateSpec { axis: -1 }),
            dense(2, Activation::Linear, 2),
        ],
        nodes: vec![
            call(0, &[Input(0)]),
            call(0, &[Node(0)]),
            call(1, &[Node(0), Node(1)]),
            call(2, &[Node(2)]),
        ],
        outputs: vec![Node(3)],
    };
    let net = Network::from_graph(&spec).unwrap();
    assert_eq!(
        net.weights().len(),
        (4 * 4 + 4) + (8 * 2 + 2),
        "one set of weights per layer"
    );
    assert_gradients_match_finite_differences(&spec, &[]);
}

#[test]
fn every_merge_and_a_tensor_merged_with_itself() {
    for op in [
        MergeOp::Add,
        MergeOp::Subtract,
        MergeOp::Multiply,
        MergeOp::Average,
        MergeOp::Maximum,
        MergeOp::Minimum,
    ] {
        let spec = GraphSpec {
            inputs: vec![vec![3]],
            constants: Vec::new(),
            layers: vec![
                dense(4, Activation::Tanh, 1),
                dense(4, Activation::Tanh, 2),
                merge(op),
                dense(2, Activation::Linear, 3),
            ],
            nodes: vec![
                call(0, &[Input(0)]),
                call(1, &[Input(0)]),
                call(2, &[Node(0), Node(1)]),
                call(3, &[Node(2)]),
            ],
            outputs: vec![Node(3)],
        };
        assert_gradients_match_finite_differences(&spec, &[]);
    }
    let squared = GraphSpec {
        inputs: vec![vec![3]],
        constants: Vec::new(),
        layers: vec![
            dense(4, Activation::Tanh, 1),
            merge(MergeOp::Multiply),
            dense(2, Activation::Linear, 3),
        ],
        nodes: vec![
            call(0, &[Input(0)]),
            call(1, &[Node(0), Node(0)]),
            call(2, &[Node(1)]),
        ],
        outputs: vec![Node(2)],
    };
    assert_gradients_match_finite_differences(&squared, &[]);
}

#[test]
fn a_frozen_base_gets_no_gradient_and_the_rest_still_learns() {
    assert_gradients_match_finite_differences(&residual(), &[0]);
    assert_gradients_match_finite_differences(&residual(), &[0, 1]);
    assert_gradients_match_finite_differences(&residual(), &[3]);
}

#[test]
fn a_dropout_called_twice_drops_differently() {
    let spec = GraphSpec {
        inputs: vec![vec![64]],
        constants: Vec::new(),
        layers: vec![
            LayerSpec::Dropout(DropoutSpec {
                rate: 0.5,
                noise_shape: None,
                seed: 7,
            }),
            LayerSpec::Concatenate(ConcatenateSpec { axis: -1 }),
        ],
        nodes: vec![
            call(0, &[Input(0)]),
            call(0, &[Input(0)]),
            call(1, &[Node(0), Node(1)]),
        ],
        outputs: vec![Node(2)],
    };
    let mut net = Network::from_graph(&spec).unwrap();
    net.begin_step(0);
    net.input_mut(1).unwrap().fill(1.0);
    let y = net.forward(1, true, Cancel::never()).unwrap();
    let (first, second) = y.split_at(64);
    assert_ne!(first, second);
    assert!(first.iter().chain(second).all(|&v| v == 0.0 || v == 2.0));
}

#[test]
fn a_forward_in_mode_drops_where_told_or_where_the_call_was_recorded_training() {
    let dropout = LayerSpec::Dropout(DropoutSpec {
        rate: 0.5,
        noise_shape: None,
        seed: 3,
    });
    let mut recorded = call(0, &[Input(0)]);
    recorded.training = true;
    let spec = GraphSpec {
        inputs: vec![vec![32]],
        constants: Vec::new(),
        layers: vec![
            dropout,
            LayerSpec::Concatenate(ConcatenateSpec { axis: -1 }),
        ],
        nodes: vec![recorded, call(0, &[Input(0)]), call(1, &[Node(0), Node(1)])],
        outputs: vec![Node(2)],
    };
    let mut net = Network::from_graph(&spec).unwrap();
    let x = vec![1.0; 64];
    let mut run = |mode, stream| {
        let mut y = vec![0.0; 128];
        net.forward_in_mode((&[&x], &mut [&mut y]), 2, (mode, stream), Cancel::never())
            .unwrap();
        y
    };
    let dropped = |half: &[f32]| half.contains(&0.0);
    let (inference, training, recorded) = (
        run(Mode::Inference, 1),
        run(Mode::Training, 1),
        run(Mode::AsRecorded, 1),
    );
    assert!(inference.iter().all(|&v| v == 1.0));
    assert!(training.iter().all(|&v| v == 0.0 || v == 2.0));
    // Per sample: the recorded call's 32 values drop, the other call's pass.
    for sample in recorded.chunks(64) {
        assert!(dropped(&sample[..32]) && !dropped(&sample[32..]));
    }
    assert_eq!(run(Mode::Training, 1), training);
    assert_ne!(run(Mode::Training, 2), training);
}

#[test]
fn references_to_later_nodes_missing_layers_or_masks_are_refused() {
    let mut masked = residual();
    masked.nodes[1].masks = vec![Some(Input(0))];
    assert!(Network::from_graph(&masked).is_err());
    let mut spec = residual();
    spec.nodes[1].inputs = vec![Node(2)];
    assert!(Network::from_graph(&spec).is_err());
    let mut spec = residual();
    spec.nodes[0].layer = 9;
    assert!(Network::from_graph(&spec).is_err());
    let mut spec = residual();
    spec.outputs = vec![Node(4)];
    assert!(Network::from_graph(&spec).is_err());
}

/// x → d0; (d0 − c0) · c1 → d1, with c0 of the output's shape and c1 broadcast along it.
fn with_constants() -> GraphSpec {
    GraphSpec {
        inputs: vec![vec![3]],
        constants: vec![
            ConstantSpec {
                shape: vec![2, 4],
                values: values(8, 20.0),
            },
            ConstantSpec {
                shape: vec![1],
                values: vec![-1.5],
            },
        ],
        layers: vec![
            dense(8, Activation::Tanh, 1),
            LayerSpec::Reshape(pynn_core::layers::ReshapeSpec {
                target_shape: vec![2, 4],
            }),
            merge(MergeOp::Subtract),
            merge(MergeOp::Multiply),
            dense(2, Activation::Linear, 3),
        ],
        nodes: vec![
            call(0, &[Input(0)]),
            call(1, &[Node(0)]),
            call(2, &[Node(1), Constant(0)]),
            call(3, &[Constant(1), Node(2)]),
            call(4, &[Node(3)]),
        ],
        outputs: vec![Node(4)],
    }
}

#[test]
fn constants_are_the_same_for_every_sample_and_get_no_gradient() {
    let spec = with_constants();
    assert_gradients_match_finite_differences(&spec, &[]);
    assert_gradients_match_finite_differences(&spec, &[0]);
    let c0 = &spec.constants[0].values;
    let mut probe = spec.clone();
    probe.layers.truncate(4);
    probe.nodes.truncate(4);
    probe.outputs = vec![Node(3)];
    let mut net = Network::from_graph(&probe).unwrap();
    let x = values(2 * 3, 0.0);
    for batch in [2, 1] {
        net.input_mut(batch)
            .unwrap()
            .copy_from_slice(&x[..batch * 3]);
        let y = net.forward(batch, false, Cancel::never()).unwrap().to_vec();
        assert_eq!(y.len(), batch * 8);
        let mut dense_only = probe.clone();
        dense_only.layers.truncate(1);
        dense_only.nodes.truncate(1);
        dense_only.outputs = vec![Node(0)];
        let mut first = Network::from_graph(&dense_only).unwrap();
        first.set_weights(net.weights()).unwrap();
        first
            .input_mut(batch)
            .unwrap()
            .copy_from_slice(&x[..batch * 3]);
        let h = first.forward(batch, false, Cancel::never()).unwrap();
        for (i, (&got, &h)) in y.iter().zip(h).enumerate() {
            assert_eq!(got, -1.5 * (h - c0[i % 8]), "value {i} of batch {batch}");
        }
    }
}

#[test]
fn constants_of_the_wrong_size_or_as_outputs_are_refused() {
    let mut spec = with_constants();
    spec.constants[0].values.pop();
    assert!(Network::from_graph(&spec).is_err());
    let mut spec = with_constants();
    spec.outputs = vec![Constant(0)];
    assert!(Network::from_graph(&spec).is_err());
    let mut spec = with_constants();
    spec.nodes[2].inputs[1] = Constant(2);
    assert!(Network::from_graph(&spec).is_err());
}

#[test]
fn a_network_replanned_for_another_length_keeps_its_weights_and_refuses_new_weight_shapes() {
    use pynn_core::kernels::conv::Padding;
    use pynn_core::kernels::pool::PoolKind;
    use pynn_core::layers::{PoolSpec, ReshapeSpec};
    let pool = LayerSpec::Pool(PoolSpec {
        op: PoolKind::Average,
        pool_size: Vec::new(),
        strides: Vec::new(),
        padding: Padding::Valid,
        global: true,
        keepdims: false,
    });
    let pooled = GraphSpec::chain(&[5, 3], &[dense(4, Activation::Tanh, 1), pool]);
    let mut net = Network::from_graph(&pooled).unwrap();
    let weights = net.weights().to_vec();
    let longer = GraphSpec {
        inputs: vec![vec![9, 3]],
        ..pooled.clone()
    };
    net.replan(&longer).unwrap();
    assert_eq!(net.weights(), &weights[..]);
    // The mean over 9 steps of the same row is that row's output.
    let x: Vec<f32> = (0..9).flat_map(|_| [0.5, -1.0, 2.0]).collect();
    let mut y = vec![0.0; 4];
    net.infer(&x, &mut y, 1, Cancel::never()).unwrap();
    net.replan(&GraphSpec {
        inputs: vec![vec![1, 3]],
        ..pooled.clone()
    })
    .unwrap();
    let mut one = vec![0.0; 4];
    net.infer(&x[..3], &mut one, 1, Cancel::never()).unwrap();
    assert!(y.iter().zip(&one).all(|(a, b)| (a - b).abs() < 1e-6));

    let flatten = LayerSpec::Reshape(ReshapeSpec {
        target_shape: vec![-1],
    });
    let flat = GraphSpec::chain(&[5, 3], &[flatten, dense(2, Activation::Linear, 2)]);
    let mut net = Network::from_graph(&flat).unwrap();
    let longer = GraphSpec {
        inputs: vec![vec![9, 3]],
        ..flat.clone()
    };
    assert!(net.replan(&longer).is_err());
    assert_eq!(net.input_shape(), &[5, 3]);
}
