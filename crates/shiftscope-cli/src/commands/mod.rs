//! One module per subcommand.

pub(crate) mod convert;
pub(crate) mod datasets;
pub(crate) mod demo;
pub(crate) mod explain;
pub(crate) mod extract;
pub(crate) mod features;
pub(crate) mod gradient;
pub(crate) mod layers;
pub(crate) mod plugins;
pub(crate) mod report;
pub(crate) mod verify;
pub(crate) mod view;
