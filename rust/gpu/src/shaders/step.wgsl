// What changes from one training step to the next, written once per step.
struct Step {
    rows: u32,      // samples in this batch
    batch: u32,     // the batch's index in the epoch (where its statistics go)
    _pad0: u32,
    _pad1: u32,
    learning_rate: f32,
    momentum: f32,
    alpha: f32,     // Adam: learning_rate * sqrt(1 - beta_2^t) / (1 - beta_1^t)
    c1: f32,        // Adam: 1 - beta_1
    c2: f32,        // Adam: 1 - beta_2
    epsilon: f32,
    _pad2: u32,
    _pad3: u32,
}

// A flat index over a 2-D grid of 64-wide workgroups (1-D dispatches stop at 65,535 groups).
fn flat_index(id: vec3<u32>, groups: vec3<u32>) -> u32 {
    return id.x + id.y * groups.x * 64u;
}
