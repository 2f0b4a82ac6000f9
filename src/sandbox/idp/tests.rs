//! Tests of the dev IdP over real HTTP.
