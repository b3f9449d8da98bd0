//! In-process tests of the whole router (`tower::ServiceExt::oneshot`, no socket): for each
//! module, what a client gets back — status and JSON — for a call that works and for a
//! client's mistake.

mod support;

mod artifacts;
mod auth;
mod experiments;
mod graphql;
mod logged_models;
mod metrics;
mod model_versions;
mod native;
mod registered_models;
mod router;
mod runs;
mod ui;
mod ui_pages;
mod ui_run;
