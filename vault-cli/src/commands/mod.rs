//! One module per command.

pub mod hsm;
pub mod shares;
