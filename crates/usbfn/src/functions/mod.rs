//! Ready-made USB functions, written only against the public service API.

pub mod acm;
pub mod gadget_zero;
pub mod hid;
