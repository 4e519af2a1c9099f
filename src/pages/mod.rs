//! The pages people meet (DESIGN §2, §19): signing in (`/login`, its second-factor
//! steps), their own account (`/account`), and recovery (`/reset`, `/invite`). A door
//! like the protocols: each handler parses, calls one sign-in capability (`auth`), and
//! renders; the sign-in capabilities know nothing of pages.

pub mod account;
pub mod login;
pub mod recovery;
