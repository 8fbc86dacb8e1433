//! muster-web
