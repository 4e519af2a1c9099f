//! Reviews of emergency sessions (DESIGN §15): written by the emergency-admin helper.
