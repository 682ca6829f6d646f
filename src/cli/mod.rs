//! Presentation for the command line (the logic lives in the library).
pub mod render;
