//! One module per command.

pub mod hsm;
