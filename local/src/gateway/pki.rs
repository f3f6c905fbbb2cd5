//! The local certificate authority: the server certificate the gateway presents, the shared
//! claim certificate, and device certificates issued by fleet provisioning. Kept in the state
//! directory, so device code configured once keeps working across restarts.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use sha2::{Digest, Sha256};

/// A certificate problem.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("certificate: {0}")]
    Certificate(#[from] rcgen::Error),
}

/// Where the PKI files are.
#[derive(Debug, Clone)]
pub struct PkiFiles {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub claim_cert: PathBuf,
    pub claim_key: PathBuf,
}

/// The local CA, able to issue certificates.
pub struct Pki {
    pub files: PkiFiles,
    pub ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate with its private key, in PEM.
pub struct Issued {
    pub certificate_pem: String,
    pub private_key_pem: String,
    pub public_key_pem: String,
}

fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|e| PkiError::File { path: path.display().to_string(), message: e.to_string() })
}

fn write(path: &Path, contents: &str) -> Result<(), PkiError> {
    std::fs::write(path, contents).map_err(|e| PkiError::File { path: path.display().to_string(), message: e.to_string() })
}

/// A private key: its owner's only.
fn write_key(path: &Path, contents: &str) -> Result<(), PkiError> {
    crate::private_file::write(path, contents.as_bytes()).map_err(|e| PkiError::File { path: path.display().to_string(), message: e.to_string() })
}

fn named(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Vitalwire local");
    dn.push(DnType::CommonName, common_name);
    dn
}

impl Pki {
    /// Loads the CA and certificates from `dir`, creating any that are missing.
    pub fn load_or_create(dir: &Path) -> Result<Self, PkiError> {
        std::fs::create_dir_all(dir).map_err(|e| PkiError::File { path: dir.display().to_string(), message: e.to_string() })?;
        let files = PkiFiles {
            ca: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            claim_cert: dir.join("claim.pem"),
            claim_key: dir.join("claim.key"),
        };
        let ca_key_path = dir.join("ca.key");
        let (ca_pem, ca_key) = if files.ca.exists() && ca_key_path.exists() {
            (read(&files.ca)?, KeyPair::from_pem(&read(&ca_key_path)?)?)
        } else {
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::default();
            params.distinguished_name = named("Vitalwire local CA");
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
            let cert = params.self_signed(&key)?;
            write(&files.ca, &cert.pem())?;
            write_key(&ca_key_path, &key.serialize_pem())?;
            (cert.pem(), key)
        };
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key)?;
        let pki = Self { files, ca_pem, issuer };
        if !(pki.files.server_cert.exists() && pki.files.server_key.exists()) {
            let mut params = CertificateParams::new(vec!["localhost".to_owned()])?;
            params.subject_alt_names.push(SanType::IpAddress("127.0.0.1".parse().map_err(|_| rcgen::Error::InvalidIpAddressOctetLength(0))?));
            params.distinguished_name = named("localhost");
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            let issued = pki.issue(params)?;
            write(&pki.files.server_cert, &issued.certificate_pem)?;
            write_key(&pki.files.server_key, &issued.private_key_pem)?;
        }
        if !(pki.files.claim_cert.exists() && pki.files.claim_key.exists()) {
            let issued = pki.issue(pki.client_params("Vitalwire claim certificate"))?;
            write(&pki.files.claim_cert, &issued.certificate_pem)?;
            write_key(&pki.files.claim_key, &issued.private_key_pem)?;
        }
        // Keys an earlier version wrote readable by everyone become the owner's only.
        for key in [&ca_key_path, &pki.files.server_key, &pki.files.claim_key] {
            crate::private_file::restrict(key).map_err(|e| PkiError::File { path: key.display().to_string(), message: e.to_string() })?;
        }
        Ok(pki)
    }

    fn client_params(&self, common_name: &str) -> CertificateParams {
        let mut params = CertificateParams::default();
        params.distinguished_name = named(common_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params
    }

    fn issue(&self, params: CertificateParams) -> Result<Issued, PkiError> {
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued { certificate_pem: cert.pem(), private_key_pem: key.serialize_pem(), public_key_pem: key.public_key_pem() })
    }

    /// A new device key pair and certificate (`CreateKeysAndCertificate`).
    pub fn create_keys_and_certificate(&self) -> Result<Issued, PkiError> {
        self.issue(self.client_params("AWS IoT Certificate"))
    }

    /// Signs a device's certificate signing request (`CreateCertificateFromCsr`).
    pub fn sign_csr(&self, csr_pem: &str) -> Result<String, PkiError> {
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem)?;
        csr.params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        csr.params.is_ca = IsCa::ExplicitNoCa;
        Ok(csr.signed_by(&self.issuer)?.pem())
    }
}

/// The certificate id AWS IoT gives a certificate: the hex SHA-256 of its DER encoding.
pub fn certificate_id(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// The DER bytes of the first certificate in a PEM text.
pub fn pem_to_der(pem: &str) -> Option<Vec<u8>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).ok().map(|c| c.to_vec())
}
