//! After the first batch, the batch loop allocates nothing. A counting allocator
//! checks it over whole epochs.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use pynn_core::cancel::Cancel;
use pynn_core::kernels::activation::Activation;
use pynn_core::kernels::gemm::{matmul, Op};
use pynn_core::kernels::loss::Loss;
use pynn_core::layers::{DenseSpec, LayerSpec};
use pynn_core::metrics::Metric;
use pynn_core::network::Network;
use pynn_core::optim::OptimizerSpec;
use pynn_core::train::{Dataset, Next, Trainer};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn dense(units: usize, activation: Activation) -> LayerSpec {
    LayerSpec::Dense(DenseSpec::new(units, activation, 1))
}

/// Allocations made by the GEMM crate alone (it allocates its packing workspace inside each
/// call) for one batch of the network below: the same products with the same shapes.
fn gemm_allocations_per_batch(batch: usize, widths: &[usize]) -> usize {
    let mut scratch = vec![0.0f32; 1 << 20];
    let source = vec![0.5f32; 1 << 20];
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for pair in widths.windows(2) {
        let (inputs, units) = (pair[0], pair[1]);
        let (a, b) = (&source[..], &source[..]);
        matmul(a, Op::N, b, Op::N, &mut scratch, batch, units, inputs, true); // forward
        matmul(
            a,
            Op::T,
            b,
            Op::N,
            &mut scratch,
            inputs,
            units,
            batch,
            false,
        ); // ∂kernel
        if inputs != widths[0] {
            matmul(
                a,
                Op::N,
                b,
                Op::T,
                &mut scratch,
                batch,
                inputs,
                units,
                false,
            ); // ∂x
        }
    }
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

/// The seed's iris network on iris-sized data: 150 samples, batches of 30, Adam.
#[test]
fn epochs_after_the_first_allocate_nothing() {
    let specs = [
        dense(256, Activation::Relu),
        dense(256, Activation::Relu),
        dense(256, Activation::Relu),
        dense(3, Activation::Softmax),
    ];
    let mut network = Network::new(&[4], &specs).unwrap();
    let loss = Loss::CategoricalCrossentropy {
        from_logits: false,
        label_smoothing: 0.0,
    };
    let adam = OptimizerSpec::adam(0.001);
    let metrics = vec![Metric::CategoricalAccuracy];
    let mut trainer = Trainer::new(&network, loss, &adam, metrics).unwrap();
    let x: Vec<f32> = (0..150 * 4).map(|i| (i as f32 * 0.37).sin()).collect();
    let y: Vec<f32> = (0..150 * 3)
        .map(|i| ((i % 3) == (i / 3) % 3) as u8 as f32)
        .collect();
    let data = Dataset::new(&x, &y, 150);
    let mut epoch = |seed| {
        trainer
            .fit_epoch(
                &mut network,
                &data,
                30,
                Some(seed),
                &mut |_| Next::Continue,
                Cancel::never(),
            )
            .unwrap()
    };
    epoch(1);
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let logs = epoch(2);
    let during = ALLOCATIONS.load(Ordering::Relaxed) - before;
    // Beyond the GEMM crate's workspace, an epoch allocates its running sums and the logs it
    // returns (and rayon may box a job): a few per epoch, fewer than one per batch.
    let gemm = 5 * gemm_allocations_per_batch(30, &[4, 256, 256, 256, 3]);
    assert!(
        during <= gemm + 4,
        "{during} allocations in an epoch of 5 batches, {gemm} of them inside GEMM"
    );
    assert_eq!(logs.batches, 5);
}
