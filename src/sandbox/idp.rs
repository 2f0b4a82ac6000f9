//! Dev OpenID Provider.
