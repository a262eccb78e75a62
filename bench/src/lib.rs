pub mod xsk;
pub mod dtls_openssl;
