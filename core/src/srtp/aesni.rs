//! AES-NI, PCLMULQDQ: the AES key schedule, AES counter mode (SRTP's AES-CM and GCM's
//! CTR) and GHASH, for the x86-64 CPUs that have the instructions (checked at run time by
//! the callers, [`available`]). Every function here is `unsafe` for that reason only:
//! each memory access goes through `load`/`store`/`load_partial`/`store_partial`, which
//! assert the slice's length, and key lengths are asserted at setup.
//!
//! Counter blocks are encrypted eight at a time, round by round interleaved. GHASH
//! multiplies up to eight blocks by the matching powers of H before a single reduction
//! (the aggregated reduction of Gueron and Kounavis, "Intel Carry-Less Multiplication
//! Instruction and its Usage for Computing the GCM Mode", 2010). Partial blocks are
//! assembled in registers, never through a stack buffer (a wide load behind narrow stores
//! stalls). Checked against ring and the RustCrypto `aes`/`ctr` crates in
//! `srtp::gcm` and `srtp::cipher` tests and the `gcm` fuzz target.

use std::arch::x86_64::*;

pub fn available() -> bool {
    is_x86_feature_detected!("aes")
        && is_x86_feature_detected!("pclmulqdq")
        && is_x86_feature_detected!("ssse3")
        && is_x86_feature_detected!("sse4.1")
}

/// An expanded AES-128 or AES-256 key.
#[derive(Clone)]
pub struct Aes {
    rk: [__m128i; 15],
    rounds: usize,
}

/// An AES-GCM key: the AES key and the hash key's powers in GHASH's byte-reflected form,
/// `h[i]` = H^(i+1).
#[derive(Clone)]
pub struct GcmKey {
    aes: Aes,
    h: [__m128i; 8],
}

#[inline(always)]
unsafe fn bswap(x: __m128i) -> __m128i {
    _mm_shuffle_epi8(x, _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15))
}

#[inline(always)]
unsafe fn load(b: &[u8]) -> __m128i {
    assert!(b.len() >= 16);
    _mm_loadu_si128(b.as_ptr() as *const __m128i)
}

#[inline(always)]
unsafe fn store(b: &mut [u8], x: __m128i) {
    assert!(b.len() >= 16);
    _mm_storeu_si128(b.as_mut_ptr() as *mut __m128i, x)
}

/// Up to 7 bytes as a little-endian integer, in at most three loads.
#[inline(always)]
unsafe fn read_small(p: *const u8, n: usize) -> u64 {
    let mut v = 0u64;
    let mut off = 0;
    if n & 4 != 0 {
        v = (p as *const u32).read_unaligned() as u64;
        off = 4;
    }
    if n & 2 != 0 {
        v |= ((p.add(off) as *const u16).read_unaligned() as u64) << (off * 8);
        off += 2;
    }
    if n & 1 != 0 {
        v |= (*p.add(off) as u64) << (off * 8);
    }
    v
}

#[inline(always)]
unsafe fn write_small(p: *mut u8, n: usize, mut v: u64) {
    if n & 4 != 0 {
        (p as *mut u32).write_unaligned(v as u32);
        v >>= 32;
    }
    let p = p.add(n & 4);
    if n & 2 != 0 {
        (p as *mut u16).write_unaligned(v as u16);
        v >>= 16;
    }
    if n & 1 != 0 {
        *p.add(n & 2) = v as u8;
    }
}

/// A final partial block (fewer than 16 bytes), zero-padded. Assembled in registers:
/// a byte-wise copy into a stack block would stall the wide load behind it.
#[inline(always)]
unsafe fn load_partial(b: &[u8]) -> __m128i {
    let (p, n) = (b.as_ptr(), b.len());
    debug_assert!(n < 16);
    let (lo, hi) =
        if n >= 8 { ((p as *const u64).read_unaligned(), read_small(p.add(8), n - 8)) } else { (read_small(p, n), 0) };
    _mm_set_epi64x(hi as i64, lo as i64)
}

/// The first `b.len()` (< 16) bytes of `x` into `b`.
#[inline(always)]
unsafe fn store_partial(b: &mut [u8], x: __m128i) {
    let (p, n) = (b.as_mut_ptr(), b.len());
    debug_assert!(n < 16);
    let lo = _mm_cvtsi128_si64(x) as u64;
    if n >= 8 {
        (p as *mut u64).write_unaligned(lo);
        write_small(p.add(8), n - 8, _mm_extract_epi64(x, 1) as u64);
    } else {
        write_small(p, n, lo);
    }
}

#[inline(always)]
unsafe fn expand_step(k: __m128i) -> __m128i {
    let k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
    let k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
    _mm_xor_si128(k, _mm_slli_si128(k, 4))
}

#[target_feature(enable = "aes,sse2")]
unsafe fn expand128(key: &[u8], rk: &mut [__m128i; 15]) {
    macro_rules! round {
        ($i:expr, $rcon:expr) => {
            let t = _mm_shuffle_epi32(_mm_aeskeygenassist_si128(rk[$i - 1], $rcon), 0xff);
            rk[$i] = _mm_xor_si128(expand_step(rk[$i - 1]), t);
        };
    }
    rk[0] = load(key);
    round!(1, 0x01);
    round!(2, 0x02);
    round!(3, 0x04);
    round!(4, 0x08);
    round!(5, 0x10);
    round!(6, 0x20);
    round!(7, 0x40);
    round!(8, 0x80);
    round!(9, 0x1b);
    round!(10, 0x36);
}

#[target_feature(enable = "aes,sse2")]
unsafe fn expand256(key: &[u8], rk: &mut [__m128i; 15]) {
    macro_rules! even {
        ($i:expr, $rcon:expr) => {
            let t = _mm_shuffle_epi32(_mm_aeskeygenassist_si128(rk[$i - 1], $rcon), 0xff);
            rk[$i] = _mm_xor_si128(expand_step(rk[$i - 2]), t);
        };
    }
    macro_rules! odd {
        ($i:expr) => {
            let t = _mm_shuffle_epi32(_mm_aeskeygenassist_si128(rk[$i - 1], 0), 0xaa);
            rk[$i] = _mm_xor_si128(expand_step(rk[$i - 2]), t);
        };
    }
    rk[0] = load(key);
    rk[1] = load(&key[16..]);
    even!(2, 0x01);
    odd!(3);
    even!(4, 0x02);
    odd!(5);
    even!(6, 0x04);
    odd!(7);
    even!(8, 0x08);
    odd!(9);
    even!(10, 0x10);
    odd!(11);
    even!(12, 0x20);
    odd!(13);
    even!(14, 0x40);
}

/// Carry-less product of two reflected field elements, unreduced, as
/// (low, middle, high) 128-bit parts.
#[inline(always)]
unsafe fn clmul(a: __m128i, b: __m128i) -> (__m128i, __m128i, __m128i) {
    let lo = _mm_clmulepi64_si128(a, b, 0x00);
    let hi = _mm_clmulepi64_si128(a, b, 0x11);
    let mid = _mm_xor_si128(_mm_clmulepi64_si128(a, b, 0x10), _mm_clmulepi64_si128(a, b, 0x01));
    (lo, mid, hi)
}

/// Shift-and-reduce of a (sum of) unreduced product(s) modulo the GCM polynomial
/// (Gueron–Kounavis, Algorithm 5 / Figure 5).
#[inline(always)]
unsafe fn reduce(lo: __m128i, mid: __m128i, hi: __m128i) -> __m128i {
    let mut t3 = _mm_xor_si128(lo, _mm_slli_si128(mid, 8));
    let mut t6 = _mm_xor_si128(hi, _mm_srli_si128(mid, 8));
    // the 256-bit product one bit to the left (the operands are bit-reflected)
    let mut t7 = _mm_srli_epi32(t3, 31);
    let mut t8 = _mm_srli_epi32(t6, 31);
    t3 = _mm_slli_epi32(t3, 1);
    t6 = _mm_slli_epi32(t6, 1);
    let t9 = _mm_srli_si128(t7, 12);
    t8 = _mm_slli_si128(t8, 4);
    t7 = _mm_slli_si128(t7, 4);
    t3 = _mm_or_si128(t3, t7);
    t6 = _mm_or_si128(t6, t8);
    t6 = _mm_or_si128(t6, t9);
    // reduction: first phase
    t7 = _mm_slli_epi32(t3, 31);
    t8 = _mm_slli_epi32(t3, 30);
    let t9 = _mm_slli_epi32(t3, 25);
    t7 = _mm_xor_si128(t7, t8);
    t7 = _mm_xor_si128(t7, t9);
    t8 = _mm_srli_si128(t7, 4);
    t7 = _mm_slli_si128(t7, 12);
    t3 = _mm_xor_si128(t3, t7);
    // second phase
    let mut t2 = _mm_srli_epi32(t3, 1);
    let t4 = _mm_srli_epi32(t3, 2);
    let t5 = _mm_srli_epi32(t3, 7);
    t2 = _mm_xor_si128(t2, t4);
    t2 = _mm_xor_si128(t2, t5);
    t2 = _mm_xor_si128(t2, t8);
    t3 = _mm_xor_si128(t3, t2);
    _mm_xor_si128(t6, t3)
}

#[inline(always)]
unsafe fn gfmul(a: __m128i, b: __m128i) -> __m128i {
    let (l, m, h) = clmul(a, b);
    reduce(l, m, h)
}

/// GHASH over a stream of blocks whose number is known in advance, eight
/// multiplications per reduction: the stream is cut into batches (the first holds the
/// remainder, the rest eight blocks each), block j of a batch of n is multiplied by
/// H^(n-j) and the products summed unreduced, in registers. The running hash of the
/// previous batches enters with the first block of the next.
struct Ghash<'k> {
    carry: __m128i,
    lo: __m128i,
    mid: __m128i,
    hi: __m128i,
    left: usize,
    h: &'k [__m128i; 8],
}

impl<'k> Ghash<'k> {
    /// A GHASH over `aad_len` bytes of AAD and `len` bytes of data (each padded to
    /// whole blocks), then the length block.
    #[inline(always)]
    unsafe fn new(h: &'k [__m128i; 8], aad_len: usize, len: usize) -> Ghash<'k> {
        let blocks = aad_len.div_ceil(16) + len.div_ceil(16) + 1;
        let z = _mm_setzero_si128();
        Ghash { carry: z, lo: z, mid: z, hi: z, left: (blocks - 1) % 8 + 1, h }
    }

    #[inline(always)]
    unsafe fn mul_add(&mut self, x: __m128i, power: usize) {
        let (l, m, h) = clmul(x, self.h[power]);
        self.lo = _mm_xor_si128(self.lo, l);
        self.mid = _mm_xor_si128(self.mid, m);
        self.hi = _mm_xor_si128(self.hi, h);
    }

    #[inline(always)]
    unsafe fn end_batch(&mut self) {
        self.carry = reduce(self.lo, self.mid, self.hi);
        let z = _mm_setzero_si128();
        (self.lo, self.mid, self.hi) = (z, z, z);
        self.left = 8;
    }

    /// One block, as it is in memory.
    #[inline(always)]
    unsafe fn push(&mut self, x: __m128i) {
        let x = _mm_xor_si128(bswap(x), self.carry);
        self.carry = _mm_setzero_si128();
        self.left -= 1;
        self.mul_add(x, self.left);
        if self.left == 0 {
            self.end_batch();
        }
    }

    /// Eight blocks forming one whole batch.
    #[inline(always)]
    unsafe fn push8(&mut self, b: &[u8]) {
        debug_assert!(self.left == 8 && b.len() >= 128);
        for i in 0..8 {
            let mut x = bswap(load(&b[16 * i..]));
            if i == 0 {
                x = _mm_xor_si128(x, self.carry);
            }
            self.mul_add(x, 7 - i);
        }
        self.end_batch();
    }

    /// Every whole block of `b`, then its zero-padded tail.
    #[inline(always)]
    unsafe fn push_bytes(&mut self, b: &[u8]) {
        let mut i = 0;
        while self.left != 8 && i + 16 <= b.len() {
            self.push(load(&b[i..]));
            i += 16;
        }
        while i + 128 <= b.len() {
            self.push8(&b[i..]);
            i += 128;
        }
        while i + 16 <= b.len() {
            self.push(load(&b[i..]));
            i += 16;
        }
        if i < b.len() {
            self.push(load_partial(&b[i..]));
        }
    }

    /// The final GHASH value (as it goes in memory), after the length block.
    #[inline(always)]
    unsafe fn finish(mut self, aad_len: usize, len: usize) -> __m128i {
        debug_assert_eq!(self.left, 1);
        // the length block is big-endian [aad bits][data bits]; byte-reflected, the
        // data bits are the low little-endian u64 and the aad bits the high one
        let lens = _mm_set_epi64x(((aad_len as u64) * 8) as i64, ((len as u64) * 8) as i64);
        self.push(bswap(lens));
        bswap(self.carry)
    }
}

impl Aes {
    /// `key`: 16 or 32 bytes (panics otherwise).
    #[target_feature(enable = "aes,sse2")]
    pub unsafe fn new(key: &[u8]) -> Aes {
        assert!(key.len() == 16 || key.len() == 32, "AES key of {} bytes", key.len());
        let mut rk = [_mm_setzero_si128(); 15];
        let rounds = if key.len() == 16 {
            expand128(key, &mut rk);
            10
        } else {
            expand256(key, &mut rk);
            14
        };
        Aes { rk, rounds }
    }

    /// AES-encrypts every block of `b` in place, the blocks interleaved round by round.
    #[inline(always)]
    unsafe fn encrypt<const N: usize>(&self, b: &mut [__m128i; N]) {
        for x in b.iter_mut() {
            *x = _mm_xor_si128(*x, self.rk[0]);
        }
        for r in 1..self.rounds {
            let k = self.rk[r];
            for x in b.iter_mut() {
                *x = _mm_aesenc_si128(*x, k);
            }
        }
        let k = self.rk[self.rounds];
        for x in b.iter_mut() {
            *x = _mm_aesenclast_si128(*x, k);
        }
    }

    /// Counter blocks `ctr`, `ctr+1`, ...: GCM's inc32 (the last 32 bits, wrapping) or,
    /// for SRTP's AES-CM, the last 16 bits (RFC 3711 §4.1.1: the IV's last 16 bits are
    /// zero and a packet has far fewer than 2^16 blocks, so the 128-bit sum never carries
    /// out of them).
    #[inline(always)]
    unsafe fn counters<const GCM: bool, const N: usize>(base: __m128i, ctr: u32) -> [__m128i; N] {
        let mut b = [base; N];
        for (i, x) in b.iter_mut().enumerate() {
            let c = ctr.wrapping_add(i as u32);
            *x = if GCM {
                _mm_insert_epi32(base, c.swap_bytes() as i32, 3)
            } else {
                _mm_insert_epi16(base, (c as u16).swap_bytes() as i32, 7)
            };
        }
        b
    }

    /// XORs the keystream from counter `first` onwards into `data`; when `ghash` is
    /// given, feeds it each block of `data` after the XOR (GCM sealing: the ciphertext).
    #[inline(always)]
    unsafe fn ctr<const GCM: bool>(&self, base: __m128i, first: u32, data: &mut [u8], mut ghash: Option<&mut Ghash>) {
        let mut ctr = first;
        let mut i = 0;
        while i + 128 <= data.len() {
            let mut ks = Self::counters::<GCM, 8>(base, ctr);
            self.encrypt(&mut ks);
            for (j, k) in ks.iter().enumerate() {
                let p = &mut data[i + 16 * j..];
                store(p, _mm_xor_si128(load(p), *k));
            }
            if let Some(g) = ghash.as_deref_mut() {
                g.push_bytes(&data[i..i + 128]);
            }
            ctr = ctr.wrapping_add(8);
            i += 128;
        }
        let rest = data.len() - i;
        if rest == 0 {
            return;
        }
        let blocks = rest.div_ceil(16);
        let mut ks = [_mm_setzero_si128(); 8];
        if blocks > 4 {
            ks = Self::counters::<GCM, 8>(base, ctr);
            self.encrypt(&mut ks);
        } else if blocks > 2 {
            let mut k4 = Self::counters::<GCM, 4>(base, ctr);
            self.encrypt(&mut k4);
            ks[..4].copy_from_slice(&k4);
        } else if blocks == 2 {
            let mut k2 = Self::counters::<GCM, 2>(base, ctr);
            self.encrypt(&mut k2);
            ks[..2].copy_from_slice(&k2);
        } else {
            let mut k1 = Self::counters::<GCM, 1>(base, ctr);
            self.encrypt(&mut k1);
            ks[0] = k1[0];
        }
        for k in &ks[..rest / 16] {
            let p = &mut data[i..];
            store(p, _mm_xor_si128(load(p), *k));
            i += 16;
        }
        if i < data.len() {
            let p = &mut data[i..];
            store_partial(p, _mm_xor_si128(load_partial(p), ks[rest / 16]));
        }
        if let Some(g) = ghash {
            g.push_bytes(&data[data.len() - rest..]);
        }
    }

    /// SRTP AES-CM (RFC 3711 §4.1.1): the keystream from `iv` XORed into `data`.
    #[target_feature(enable = "aes,sse2,ssse3,sse4.1")]
    pub unsafe fn apply_cm(&self, iv: &[u8; 16], data: &mut [u8]) {
        debug_assert!(iv[14] == 0 && iv[15] == 0 && data.len() < 16 << 16);
        self.ctr::<false>(load(iv), 0, data, None)
    }
}

impl GcmKey {
    /// `key`: 16 or 32 bytes (panics otherwise).
    #[target_feature(enable = "aes,pclmulqdq,sse2,ssse3,sse4.1")]
    pub unsafe fn new(key: &[u8]) -> GcmKey {
        let aes = Aes::new(key);
        let mut e = [_mm_setzero_si128()];
        aes.encrypt(&mut e);
        let h = bswap(e[0]);
        let mut k = GcmKey { aes, h: [h; 8] };
        for i in 1..8 {
            k.h[i] = gfmul(k.h[i - 1], h);
        }
        k
    }

    /// The first counter block (J0 = nonce || 1) with the last word zero, and E(J0).
    #[inline(always)]
    unsafe fn j0(&self, nonce: &[u8; 12]) -> (__m128i, __m128i) {
        let base = load_partial(nonce);
        let mut e = Aes::counters::<true, 1>(base, 1);
        self.aes.encrypt(&mut e);
        (base, e[0])
    }

    #[target_feature(enable = "aes,pclmulqdq,sse2,ssse3,sse4.1")]
    pub unsafe fn seal(&self, nonce: &[u8; 12], aad: &[u8], data: &mut [u8]) -> [u8; 16] {
        let (base, ej0) = self.j0(nonce);
        let mut g = Ghash::new(&self.h, aad.len(), data.len());
        g.push_bytes(aad);
        self.aes.ctr::<true>(base, 2, data, Some(&mut g));
        let s = _mm_xor_si128(g.finish(aad.len(), data.len()), ej0);
        let mut tag = [0u8; 16];
        store(&mut tag, s);
        tag
    }

    /// Authenticates, then decrypts; on failure `data` is untouched.
    #[target_feature(enable = "aes,pclmulqdq,sse2,ssse3,sse4.1")]
    pub unsafe fn open(&self, nonce: &[u8; 12], aad: &[u8], data: &mut [u8], tag: &[u8; 16]) -> bool {
        let (base, ej0) = self.j0(nonce);
        let mut g = Ghash::new(&self.h, aad.len(), data.len());
        g.push_bytes(aad);
        g.push_bytes(data);
        let s = _mm_xor_si128(g.finish(aad.len(), data.len()), ej0);
        // constant time: every byte compared, one branch on the result
        let diff = _mm_xor_si128(s, load(tag));
        if _mm_testz_si128(diff, diff) == 0 {
            return false;
        }
        self.aes.ctr::<true>(base, 2, data, None);
        true
    }
}
