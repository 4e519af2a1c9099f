//! Keys Gatehouse makes for itself and keeps in the database, sealed under the master
//! key (DESIGN §12): the token signing key rings and their rotation (`rings`), named
//! secrets such as the audit chain key (`sealed`), and the key to users' personal data
//! (`pii`). Here the cryptography (`crypto`) meets the rows (`store`), so that neither
//! of those knows the other.

pub mod master;
pub mod pii;
pub mod rings;
pub mod sealed;
