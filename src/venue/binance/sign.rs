//! Credentials and signing: `Credentials` (the API key and the prepared HMAC key schedule or
//! Ed25519 key pair), `KeyType`, and `SignedWriter`, the JSON writer that feeds each
//! `name=value` to the HMAC as it writes it, so the signed payload and the request are the
//! same bytes.
//!
//! Never: stores, prints or logs the secret or private key as text; allocates or reads the
//! clock in `SignedWriter`.

use super::*;

/// The API key and how requests are authenticated: an HMAC-SHA256 key schedule prepared
/// from the secret (every signed request carries `apiKey` and a hex signature), or an
/// Ed25519 private key (the connection is authenticated once with `session.logon`; later
/// requests carry neither `apiKey` nor a signature). The secret or private key is consumed
/// by the constructor and kept only as the prepared key; `Debug` prints neither.
#[derive(Clone)]
pub struct Credentials {
    api_key: [u8; API_KEY_LEN_MAX],
    api_key_len: usize,
    pub(super) signer: Signer,
}

/// Which kind of API key the credentials hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    /// HMAC-SHA256 (`BINANCE_API_SECRET`): every request signed.
    Hmac,
    /// Ed25519 (`BINANCE_ED25519_PRIVATE_KEY_PATH`): `session.logon` once per connection.
    Ed25519,
}

#[derive(Clone)]
pub(super) enum Signer {
    Hmac(Hmac<Sha256>),
    // `Ed25519KeyPair` is not `Clone`; cloned credentials share the key.
    Ed25519(Arc<Ed25519KeyPair>),
}

impl Credentials {
    /// HMAC credentials. Validates the key (printable ASCII without quotes or backslashes,
    /// so it can be written into JSON as is) and prepares the key schedule. Off the hot
    /// path.
    pub fn new(api_key: &str, api_secret: &str) -> Result<Credentials, BinanceError> {
        let (key, len) = checked_api_key(api_key)?;
        if api_secret.is_empty() {
            return Err(BinanceError::BadApiSecret);
        }
        let mac = Hmac::<Sha256>::new_from_slice(api_secret.as_bytes())
            .map_err(|_| BinanceError::BadApiSecret)?;
        Ok(Credentials {
            api_key: key,
            api_key_len: len,
            signer: Signer::Hmac(mac),
        })
    }

    /// Ed25519 credentials from a PKCS#8 private key in PEM (`-----BEGIN PRIVATE KEY-----`,
    /// as `openssl genpkey -algorithm ed25519` writes it). Off the hot path.
    pub fn ed25519_from_pem(api_key: &str, pem: &[u8]) -> Result<Credentials, BinanceError> {
        let (key, len) = checked_api_key(api_key)?;
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem).map_err(|e| match e {
            pem::Error::NoItemsFound => BinanceError::BadPrivateKey(
                "no unencrypted PKCS#8 PEM block (-----BEGIN PRIVATE KEY-----) found; an \
                 encrypted key must be decrypted first (openssl pkey -in KEY -out PLAIN)",
            ),
            _ => BinanceError::BadPrivateKey("the PEM text is malformed"),
        })?;
        // `maybe_unchecked`: OpenSSL writes PKCS#8 v1 (no public key inside), which
        // `from_pkcs8` refuses.
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der.secret_pkcs8_der())
            .map_err(|_| BinanceError::BadPrivateKey("not an Ed25519 private key"))?;
        Ok(Credentials {
            api_key: key,
            api_key_len: len,
            signer: Signer::Ed25519(Arc::new(pair)),
        })
    }

    /// From the environment: `BINANCE_API_KEY` and either `BINANCE_API_SECRET` (HMAC) or
    /// `BINANCE_ED25519_PRIVATE_KEY_PATH` (a PEM file; Ed25519). Both set is an error (which
    /// key was meant is not guessed). Errors name the variables, never their values.
    pub fn from_env() -> Result<Credentials, BinanceError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let key = var("BINANCE_API_KEY").ok_or(BinanceError::MissingKeys)?;
        match (
            var("BINANCE_API_SECRET"),
            var("BINANCE_ED25519_PRIVATE_KEY_PATH"),
        ) {
            (Some(_), Some(_)) => Err(BinanceError::TwoKeyTypes),
            (Some(secret), None) => Credentials::new(&key, &secret),
            (None, Some(path)) => {
                let pem = std::fs::read(&path).map_err(|e| BinanceError::KeyFile(e.kind()))?;
                Credentials::ed25519_from_pem(&key, &pem)
            }
            (None, None) => Err(BinanceError::MissingKeys),
        }
    }

    /// The API key (public: it is sent with every request or at logon).
    pub fn api_key(&self) -> &[u8] {
        &self.api_key[..self.api_key_len]
    }

    /// Which kind of key this is.
    pub fn key_type(&self) -> KeyType {
        match self.signer {
            Signer::Hmac(_) => KeyType::Hmac,
            Signer::Ed25519(_) => KeyType::Ed25519,
        }
    }

    /// Lower-case hex HMAC-SHA256 of `payload` (clones the prepared key schedule); `false`
    /// (nothing written) for an Ed25519 key.
    pub fn sign_hex(&self, payload: &[u8], out: &mut [u8; 64]) -> bool {
        let Signer::Hmac(mac) = &self.signer else {
            return false;
        };
        let mut mac = mac.clone();
        mac.update(payload);
        hex_into(&mac.finalize().into_bytes(), out);
        true
    }

    /// Standard base64 (with padding) of the Ed25519 signature of `payload`, as
    /// `session.logon` wants it; `false` (nothing written) for an HMAC key. Never
    /// allocates.
    pub fn sign_ed25519_base64(
        &self,
        payload: &[u8],
        out: &mut [u8; ED25519_SIGNATURE_B64_LEN],
    ) -> bool {
        let Signer::Ed25519(pair) = &self.signer else {
            return false;
        };
        let signature = pair.sign(payload);
        BASE64.encode_slice(signature.as_ref(), out) == Ok(ED25519_SIGNATURE_B64_LEN)
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key is shown shortened (enough to tell accounts apart); the secret is gone.
        let key = self.api_key();
        let head = std::str::from_utf8(&key[..key.len().min(6)]).unwrap_or("?");
        let kind = self.key_type();
        write!(
            f,
            "Credentials {{ api_key: {head}…, {kind:?}, secret: <redacted> }}"
        )
    }
}

fn checked_api_key(api_key: &str) -> Result<([u8; API_KEY_LEN_MAX], usize), BinanceError> {
    let raw = api_key.as_bytes();
    let legal = |b: &u8| b.is_ascii_graphic() && *b != b'"' && *b != b'\\';
    if raw.is_empty() || raw.len() > API_KEY_LEN_MAX || !raw.iter().all(legal) {
        return Err(BinanceError::BadApiKey);
    }
    let mut key = [0u8; API_KEY_LEN_MAX];
    key[..raw.len()].copy_from_slice(raw);
    Ok((key, raw.len()))
}

/// The JSON writer that signs as it writes (with an HMAC key schedule; without one it only
/// writes). Parameters must come in name order (checked in debug builds).
pub(super) struct SignedWriter<'a> {
    pub(super) out: &'a mut [u8],
    pub(super) pos: usize,
    overflow: bool,
    pub(super) mac: Option<Hmac<Sha256>>,
    pub(super) params: u32,
    #[cfg(debug_assertions)]
    last_name: [u8; 32],
    #[cfg(debug_assertions)]
    last_name_len: usize,
}

impl<'a> SignedWriter<'a> {
    pub(super) fn new(out: &'a mut [u8], mac: Option<Hmac<Sha256>>) -> SignedWriter<'a> {
        SignedWriter {
            out,
            pos: 0,
            overflow: false,
            mac,
            params: 0,
            #[cfg(debug_assertions)]
            last_name: [0u8; 32],
            #[cfg(debug_assertions)]
            last_name_len: 0,
        }
    }

    /// `{"id":"<req_id>","method":"<method>","params":{`.
    pub(super) fn head(&mut self, req_id: u64, method: &[u8]) {
        self.put(b"{\"id\":\"");
        let mut digits = [0u8; 20];
        let n = write_u64(req_id, &mut digits);
        self.put(&digits[..n]);
        self.put(b"\",\"method\":\"");
        self.put(method);
        self.put(b"\",\"params\":{");
    }

    pub(super) fn sign(&mut self, bytes: &[u8]) {
        if let Some(mac) = self.mac.as_mut() {
            mac.update(bytes);
        }
    }

    fn put(&mut self, bytes: &[u8]) {
        match self.out.get_mut(self.pos..self.pos + bytes.len()) {
            Some(dst) if !self.overflow => {
                dst.copy_from_slice(bytes);
                self.pos += bytes.len();
            }
            _ => self.overflow = true,
        }
    }

    pub(super) fn name(&mut self, name: &[u8]) {
        #[cfg(debug_assertions)]
        {
            debug_assert!(
                name > &self.last_name[..self.last_name_len] && name.len() <= 32,
                "parameters out of name order"
            );
            self.last_name[..name.len()].copy_from_slice(name);
            self.last_name_len = name.len();
        }
        if self.params > 0 {
            self.put(b",");
            self.sign(b"&");
        }
        self.params += 1;
        self.put(b"\"");
        self.put(name);
        self.put(b"\":");
        self.sign(name);
        self.sign(b"=");
    }

    /// A string parameter (the caller guarantees it needs no JSON escaping).
    pub(super) fn text(&mut self, name: &[u8], value: &[u8]) {
        self.name(name);
        self.put(b"\"");
        self.put(value);
        self.put(b"\"");
        self.sign(value);
    }

    /// A literal parameter (`true`, a number already in text): written unquoted.
    pub(super) fn text_raw(&mut self, name: &[u8], value: &[u8]) {
        self.name(name);
        self.put(value);
        self.sign(value);
    }

    /// A number parameter (signed as its JSON text, as Binance does).
    pub(super) fn number(&mut self, name: &[u8], value: u64) {
        self.name(name);
        let mut digits = [0u8; 20];
        let n = write_u64(value, &mut digits);
        self.put(&digits[..n]);
        self.sign(&digits[..n]);
    }

    /// With a key schedule `,"signature":"<hex>"}}`, without one `}}`; the length.
    pub(super) fn finish(mut self) -> Option<usize> {
        if let Some(mac) = self.mac.take() {
            let mut hex = [0u8; 64];
            hex_into(&mac.finalize().into_bytes(), &mut hex);
            self.put(b",\"signature\":\"");
            self.put(&hex);
            self.put(b"\"");
        }
        self.put(b"}}");
        (!self.overflow).then_some(self.pos)
    }
}
