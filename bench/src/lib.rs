pub mod xsk;
