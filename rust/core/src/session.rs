//! A model's engine as a caller holds it: the network (the reference copy of the weights), its
//! trainer once compiled, and the copy another device trains, kept in step lazily. The weights
//! and optimizer state come down from the device only when the CPU side reads them, and go up
//! only when the CPU side changed them since; a new compile or new input shapes drop the copy.

use std::ops::Range;

use crate::cancel::Cancel;
use crate::epoch::{self, SumsLayout};
use crate::error::{CoreError, Result};
use crate::graph::{DevicePlan, GraphSpec};
use crate::network::Network;
use crate::optim::OptimizerSpec;
use crate::train::{self, Dataset, Logs, Next, OutputSpec, Progress, Trainer};

/// A compiled model as a device builds its copy: the planned network, each output's loss (with
/// its weight) and metrics, and the optimizer.
pub struct DeviceModel<'a> {
    pub plan: DevicePlan,
    pub outputs: &'a [OutputSpec],
    pub optimizer: &'a OptimizerSpec,
}

/// A device other than the CPU (the GPU): it builds copies of compiled models.
pub trait Device: Sync {
    /// The device's copy of `model`, or [`CoreError::Unsupported`] naming what it does not run.
    fn copy_of(&self, model: &DeviceModel) -> Result<Box<dyn DeviceCopy>>;
}

/// The weights, the optimizer's slots (in [`crate::optim::Optimizer::state`]'s order) and its
/// step count: what moves between the CPU and a device.
#[derive(Clone, Default)]
pub struct TrainingState {
    pub weights: Vec<f32>,
    pub slots: Vec<Vec<f32>>,
    pub iterations: u64,
}

/// A model's training state resident on a device, and what runs there batch by batch; the
/// loops over batches are the core's ([`crate::epoch`]).
pub trait DeviceCopy: Send {
    /// Puts `weights`, the optimizer's `slots` and its step count on the device.
    fn upload(&mut self, weights: &[f32], slots: &[Vec<f32>], iterations: u64) -> Result<()>;
    fn download(&self) -> Result<TrainingState>;
    /// Makes room for a loop of `batches` batches of up to `samples` samples.
    fn prepare(&mut self, samples: usize, batches: usize) -> Result<()>;
    /// A training step on the samples `indices` of `data` as the loop's batch `index`, at
    /// `learning_rate`; its sums stay on the device.
    fn train_batch(
        &mut self,
        data: &Dataset,
        indices: &[usize],
        index_and_learning_rate: (usize, f32),
    ) -> Result<()>;
    /// The losses and metrics of the samples `indices` with fixed weights, as batch `index`.
    fn test_batch(&mut self, data: &Dataset, indices: &[usize], index: usize) -> Result<()>;
    /// The sums of the loop's first `batches` batches, laid out as
    /// [`crate::epoch::SumsLayout`] says.
    fn batch_sums(&self, batches: usize) -> Result<Vec<f32>>;
    /// The outputs of samples `rows` of `xs` (one array per input) into the same rows of
    /// `outs` (one per output); with `last`, every output computed since the loop began is in
    /// `outs` when it returns.
    fn predict_batch(
        &mut self,
        xs: &[&[f32]],
        rows: Range<usize>,
        outs: &mut [&mut [f32]],
        last: bool,
    ) -> Result<()>;
}

/// A device's copy brought up to date, how its sums are laid out, and the trainer.
type OnDevice<'a> = (&'a mut dyn DeviceCopy, &'a SumsLayout, &'a Trainer);

pub struct Session {
    network: Network,
    trainer: Option<Trainer>,
    /// What built the network and the trainer, for a device's copy of them.
    graph: GraphSpec,
    compiled: Option<(Vec<OutputSpec>, OptimizerSpec)>,
    copy: Option<Box<dyn DeviceCopy>>,
    /// How the copy's batch sums are laid out.
    layout: Option<SumsLayout>,
    /// The trainable flags the copy was built with: it steps only those layers.
    copy_trains: Vec<bool>,
    /// The device trained since the CPU copy was last brought up to date.
    device_newer: bool,
    /// The CPU copy changed since it was last uploaded.
    cpu_newer: bool,
}

fn no_trainer() -> CoreError {
    CoreError::State("The engine has no loss and optimizer yet.".into())
}

impl Session {
    /// The network of `graph`, its weights initialised.
    pub fn new(graph: GraphSpec) -> Result<Self> {
        Ok(Session {
            network: Network::from_graph(&graph)?,
            trainer: None,
            graph,
            compiled: None,
            copy: None,
            layout: None,
            copy_trains: Vec::new(),
            device_newer: false,
            cpu_newer: false,
        })
    }

    /// The network, for what does not read its weights (shapes, sizes, trainable flags).
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// The network with the weights a device trained, for reading them.
    pub fn reading(&mut self) -> Result<&mut Network> {
        self.bring_to_cpu()?;
        Ok(&mut self.network)
    }

    /// The network and its trainer with the device's state, for reading them.
    pub fn reading_trained(&mut self) -> Result<(&mut Network, &mut Trainer)> {
        self.bring_to_cpu()?;
        let trainer = self.trainer.as_mut().ok_or_else(no_trainer)?;
        Ok((&mut self.network, trainer))
    }

    /// [`Session::reading`], for a call that changes the weights: the device takes them up
    /// again before it next runs.
    pub fn changing(&mut self) -> Result<&mut Network> {
        self.bring_to_cpu()?;
        self.cpu_newer = true;
        Ok(&mut self.network)
    }

    /// [`Session::reading_trained`], for a call that changes the weights or the optimizer.
    pub fn changing_trained(&mut self) -> Result<(&mut Network, &mut Trainer)> {
        self.cpu_newer = true;
        self.reading_trained()
    }

    /// The trainer, for what the device's copy does not hold (the learning rate, the logs'
    /// layout).
    pub fn trainer(&mut self) -> Result<&mut Trainer> {
        self.trainer.as_mut().ok_or_else(no_trainer)
    }

    /// Sets which layers' weights train. Only flags: a device's copy is rebuilt, from the
    /// trained state, when it next runs.
    pub fn set_trainable(&mut self, trainable: &[bool]) -> Result<()> {
        self.network.set_trainable(trainable)
    }

    /// Whether `data` fits the model's inputs and compiled outputs.
    fn check(&self, data: &Dataset) -> Result<()> {
        let trainer = self.trainer.as_ref().ok_or_else(no_trainer)?;
        trainer.check(&self.network, data)
    }

    /// Attaches each output's loss and metrics and an optimizer, whose state starts anew.
    pub fn compile(&mut self, outputs: Vec<OutputSpec>, optimizer: OptimizerSpec) -> Result<()> {
        self.bring_to_cpu()?;
        self.trainer = Some(Trainer::with_outputs(
            &self.network,
            outputs.clone(),
            &optimizer,
        )?);
        self.compiled = Some((outputs, optimizer));
        self.forget_copy();
        Ok(())
    }

    /// Plans the network for inputs of `input_shapes`, keeping weights, optimizer and losses.
    pub fn reshape_inputs(&mut self, input_shapes: Vec<Vec<usize>>) -> Result<()> {
        self.bring_to_cpu()?;
        let mut graph = self.graph.clone();
        if input_shapes.len() != graph.inputs.len() {
            let expected = format!("{} shapes, one per model input", graph.inputs.len());
            return Err(CoreError::invalid(
                "input_shapes",
                expected,
                input_shapes.len(),
            ));
        }
        graph.inputs = input_shapes;
        self.network.replan(&graph)?;
        self.graph = graph;
        self.forget_copy();
        Ok(())
    }

    fn forget_copy(&mut self) {
        (self.copy, self.layout) = (None, None);
        (self.device_newer, self.cpu_newer) = (false, false);
    }

    /// Why `device` cannot run this compiled model (`None` when it can), after building its
    /// copy.
    pub fn unsupported_on(&mut self, device: &dyn Device) -> Result<Option<String>> {
        match self.prepare(device) {
            Ok(()) => Ok(None),
            Err(CoreError::Unsupported(what)) => Ok(Some(what)),
            Err(error) => Err(error),
        }
    }

    /// Builds `device`'s copy unless one exists for the same trainable layers.
    fn prepare(&mut self, device: &dyn Device) -> Result<()> {
        let (outputs, optimizer) = self.compiled.as_ref().ok_or_else(no_trainer)?;
        if outputs.iter().all(|o| o.loss.is_none()) {
            return Err(no_trainer());
        }
        if self.copy.is_some() && self.copy_trains == self.network.trainable() {
            return Ok(());
        }
        let (outputs, optimizer) = (outputs.clone(), optimizer.clone());
        // Layers frozen or unfrozen since the copy was built: a new one, from the CPU's state.
        self.bring_to_cpu()?;
        self.forget_copy();
        let model = DeviceModel {
            plan: self.network.device_plan(),
            outputs: &outputs,
            optimizer: &optimizer,
        };
        self.copy = Some(device.copy_of(&model)?);
        let network = &self.network;
        self.layout = Some(SumsLayout {
            rows_per_sample: (0..outputs.len())
                .map(|o| network.output_size_of(o) / network.output_width_of(o))
                .collect(),
            outputs,
        });
        self.copy_trains = self.network.trainable().to_vec();
        self.cpu_newer = true;
        Ok(())
    }

    /// Brings the CPU copy up to date with what the device trained.
    fn bring_to_cpu(&mut self) -> Result<()> {
        let (Some(copy), true) = (&self.copy, self.device_newer) else {
            return Ok(());
        };
        let state = copy.download()?;
        self.network.set_weights(&state.weights)?;
        if let Some(trainer) = &mut self.trainer {
            let slots: Vec<&[f32]> = state.slots.iter().map(Vec::as_slice).collect();
            trainer
                .optimizer_mut()
                .set_state(state.iterations, &slots)?;
        }
        self.device_newer = false;
        Ok(())
    }

    /// `device`'s copy with the CPU's weights and optimizer state if they changed since, and
    /// the trainer.
    fn on_device(&mut self, device: &dyn Device) -> Result<OnDevice<'_>> {
        self.prepare(device)?;
        let trainer = self.trainer.as_ref().ok_or_else(no_trainer)?;
        let copy = self.copy.as_deref_mut().expect("prepared");
        let layout = self.layout.as_ref().expect("prepared");
        if self.cpu_newer {
            let optimizer = trainer.optimizer();
            let slots = optimizer.state()?;
            copy.upload(self.network.weights(), &slots, optimizer.iterations())?;
            self.cpu_newer = false;
        }
        Ok((copy, layout, trainer))
    }

    /// One epoch, on `device` or (without) on the CPU.
    pub fn fit_epoch(
        &mut self,
        device: Option<&dyn Device>,
        data: &Dataset,
        (batch_size, shuffle_seed): (usize, Option<u64>),
        after_batch: &mut dyn FnMut(&Progress) -> Next,
        cancel: &Cancel,
    ) -> Result<Logs> {
        let Some(device) = device else {
            let (network, trainer) = self.changing_trained()?;
            return trainer.fit_epoch(network, data, batch_size, shuffle_seed, after_batch, cancel);
        };
        self.check(data)?;
        let (copy, layout, trainer) = self.on_device(device)?;
        let learning_rate = trainer.optimizer().learning_rate();
        let batching = (batch_size, shuffle_seed, learning_rate);
        let logs = epoch::fit_on_device(copy, layout, data, batching, after_batch, cancel);
        // Even a failed or interrupted epoch may have stepped the device's weights.
        self.device_newer = true;
        logs
    }

    /// The losses and metrics over `data` with fixed weights, on `device` or the CPU.
    pub fn evaluate(
        &mut self,
        device: Option<&dyn Device>,
        data: &Dataset,
        batch_size: usize,
        after_batch: &mut dyn FnMut(&Progress) -> Next,
        cancel: &Cancel,
    ) -> Result<Logs> {
        let Some(device) = device else {
            let (network, trainer) = self.reading_trained()?;
            return trainer.evaluate(network, data, batch_size, after_batch, cancel);
        };
        self.check(data)?;
        let (copy, layout, _) = self.on_device(device)?;
        epoch::evaluate_on_device(copy, layout, data, batch_size, after_batch, cancel)
    }

    /// Predictions for `len` samples of `xs` (one array per input) into `outs` (one per
    /// output), on `device` or the CPU.
    pub fn predict(
        &mut self,
        device: Option<&dyn Device>,
        (xs, len): (&[&[f32]], usize),
        batch_size: usize,
        outs: &mut [&mut [f32]],
        after_batch: &mut dyn FnMut(&Progress) -> Next,
        cancel: &Cancel,
    ) -> Result<Next> {
        let Some(device) = device else {
            let network = self.reading()?;
            return train::predict_all(network, (xs, len), batch_size, outs, after_batch, cancel);
        };
        train::check_predict(&self.network, (xs, len), outs, batch_size)?;
        let (copy, _, _) = self.on_device(device)?;
        epoch::predict_on_device(copy, (xs, len), batch_size, outs, after_batch, cancel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::activation::Activation;
    use crate::kernels::loss::Loss;
    use crate::layers::{DenseSpec, LayerSpec};
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    use std::sync::Arc;

    /// How often a copy moved its state each way.
    #[derive(Default)]
    struct Moves {
        uploads: AtomicUsize,
        downloads: AtomicUsize,
    }

    /// A device whose copy keeps the uploaded state and, as its "training", adds 1 to every
    /// weight and counts a step for each batch; it refuses models of several outputs.
    struct Counting(Arc<Moves>);

    struct Copy {
        state: TrainingState,
        moves: Arc<Moves>,
        /// Sums per batch.
        stride: usize,
    }

    impl Device for Counting {
        fn copy_of(&self, model: &DeviceModel) -> Result<Box<dyn DeviceCopy>> {
            if model.outputs.len() > 1 {
                return Err(CoreError::Unsupported("models of several outputs".into()));
            }
            let (state, moves) = (TrainingState::default(), self.0.clone());
            let stride = SumsLayout::stride(model.outputs);
            Ok(Box::new(Copy {
                state,
                moves,
                stride,
            }))
        }
    }

    impl DeviceCopy for Copy {
        fn upload(&mut self, weights: &[f32], slots: &[Vec<f32>], iterations: u64) -> Result<()> {
            self.moves.uploads.fetch_add(1, Relaxed);
            self.state = TrainingState {
                weights: weights.to_vec(),
                slots: slots.to_vec(),
                iterations,
            };
            Ok(())
        }

        fn download(&self) -> Result<TrainingState> {
            self.moves.downloads.fetch_add(1, Relaxed);
            Ok(self.state.clone())
        }

        fn prepare(&mut self, _: usize, _: usize) -> Result<()> {
            Ok(())
        }

        fn train_batch(&mut self, _: &Dataset, _: &[usize], _: (usize, f32)) -> Result<()> {
            self.state.weights.iter_mut().for_each(|w| *w += 1.0);
            self.state.iterations += 1;
            Ok(())
        }

        fn test_batch(&mut self, _: &Dataset, _: &[usize], _: usize) -> Result<()> {
            Ok(())
        }

        fn batch_sums(&self, batches: usize) -> Result<Vec<f32>> {
            Ok(vec![0.0; batches * self.stride])
        }

        fn predict_batch(
            &mut self,
            _: &[&[f32]],
            _: Range<usize>,
            _: &mut [&mut [f32]],
            _: bool,
        ) -> Result<()> {
            Ok(())
        }
    }

    fn mse(weight: f32) -> OutputSpec {
        OutputSpec {
            loss: Some(Loss::MeanSquaredError),
            weight,
            metrics: Vec::new(),
        }
    }

    fn session() -> Session {
        let layers = [LayerSpec::Dense(DenseSpec::new(2, Activation::Linear, 1))];
        let mut session = Session::new(GraphSpec::chain(&[3], &layers)).unwrap();
        session
            .compile(vec![mse(1.0)], OptimizerSpec::sgd(0.1))
            .unwrap();
        session
    }

    #[test]
    fn state_moves_only_when_the_other_side_reads_what_changed() {
        let moves = Arc::new(Moves::default());
        let device = Counting(moves.clone());
        let (x, y) = (vec![0.5; 12], vec![1.0; 8]);
        let data = Dataset::new(&x, &y, 4);
        let mut session = session();
        let before = session.network().weights().to_vec();
        let epoch = |session: &mut Session, device: Option<&dyn Device>| {
            let batching = (2, None);
            let never = Cancel::never();
            session.fit_epoch(device, &data, batching, &mut |_| Next::Continue, never)
        };
        let count = || (moves.uploads.load(Relaxed), moves.downloads.load(Relaxed));
        epoch(&mut session, Some(&device)).unwrap();
        epoch(&mut session, Some(&device)).unwrap();
        assert_eq!(count(), (1, 0), "uploaded once, nothing read yet");
        let (network, trainer) = session.reading_trained().unwrap();
        // Two epochs of two batches.
        let moved: Vec<f32> = before.iter().map(|w| w + 4.0).collect();
        assert_eq!(
            (network.weights(), trainer.optimizer().iterations()),
            (&moved[..], 4)
        );
        session.reading().unwrap();
        assert_eq!(count(), (1, 1), "read twice, downloaded once");
        // A CPU epoch changes the weights: the device takes them up before it runs again.
        epoch(&mut session, None).unwrap();
        epoch(&mut session, Some(&device)).unwrap();
        assert_eq!(count(), (2, 1));
        // A new compile forgets the copy.
        session
            .compile(vec![mse(1.0)], OptimizerSpec::sgd(0.1))
            .unwrap();
        assert_eq!(count(), (2, 2), "brought down before compiling");
        assert!(session.copy.is_none());
    }

    #[test]
    fn what_a_device_cannot_run_is_named_before_a_copy_is_built() {
        let device = Counting(Arc::default());
        // The Dense's output twice: a model of two outputs.
        let layers = [LayerSpec::Dense(DenseSpec::new(2, Activation::Linear, 1))];
        let mut graph = GraphSpec::chain(&[3], &layers);
        graph.outputs.push(graph.outputs[0]);
        let mut session = Session::new(graph).unwrap();
        let outputs = vec![mse(1.0), mse(0.5)];
        session.compile(outputs, OptimizerSpec::sgd(0.1)).unwrap();
        let why = session.unsupported_on(&device).unwrap();
        assert_eq!(why.as_deref(), Some("models of several outputs"));
        assert!(session.copy.is_none());
        let mut uncompiled = Session::new(session.graph.clone()).unwrap();
        assert!(matches!(
            uncompiled.unsupported_on(&device),
            Err(CoreError::State(_))
        ));
    }

    #[test]
    fn freezing_layers_rebuilds_the_copy_from_the_trained_state() {
        let moves = Arc::new(Moves::default());
        let device = Counting(moves.clone());
        let (x, y) = (vec![0.5; 12], vec![1.0; 8]);
        let data = Dataset::new(&x, &y, 4);
        let mut session = session();
        let epoch = |session: &mut Session| {
            let (batching, never) = ((2, None), Cancel::never());
            let after = &mut |_: &Progress| Next::Continue;
            session
                .fit_epoch(Some(&device), &data, batching, after, never)
                .unwrap();
        };
        epoch(&mut session);
        session.set_trainable(&[false]).unwrap();
        epoch(&mut session);
        // The first copy's training came down, and went up into the new copy.
        assert_eq!(moves.downloads.load(Relaxed), 1);
        assert_eq!(moves.uploads.load(Relaxed), 2);
        assert_eq!(session.copy_trains, [false]);
        let iterations = session
            .reading_trained()
            .unwrap()
            .1
            .optimizer()
            .iterations();
        assert_eq!(iterations, 4);
    }
}
