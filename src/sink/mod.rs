//! Where an execution's output is made visible. `delta`: Delta Lake tables (issue 12).

pub mod delta;
