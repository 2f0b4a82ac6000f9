//! BigCommerce emulator (see CONTRACT.md §8).
