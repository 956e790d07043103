//! takeout's pure-Rust core. Nothing here links Python: the `PyO3` layer in `takeout-py`
//! converts live objects into the plain structs these modules take.

pub mod bundle;
pub mod bytecode;
pub mod env_index;
pub mod lock;
pub mod metadata;
pub mod notebook;
pub mod pickle_scan;
pub mod server;
