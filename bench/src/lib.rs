pub mod dtls_openssl;
pub mod xsk;
