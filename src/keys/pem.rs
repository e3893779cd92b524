//! PEM public keys (SPKI, and PKCS#1 RSA) read into key material.

use super::{Family, Material, strip_zeros};

/// Read a PEM public key into normalised material.
pub(super) fn pem_material(pem: &[u8]) -> Result<Material, String> {
    use jsonwebtoken::{DecodingKey, DecodingKeyKind};
    let der = |key: &DecodingKey| match key.kind() {
        DecodingKeyKind::SecretOrDer(der) => der.clone(),
        DecodingKeyKind::RsaModulusExponent { n, .. } => n.clone(),
    };
    if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
        let der = der(&key);
        let (n, e) = der::rsa_public_key(&der)
            .ok_or("the RSA public key is not a valid PKCS#1 structure")?;
        return Ok(Material::Rsa {
            n: strip_zeros(n).to_vec(),
            e: strip_zeros(e).to_vec(),
        });
    }
    if let Ok(key) = DecodingKey::from_ec_pem(pem) {
        let point = der(&key);
        let curve = match point.len() {
            65 => Family::EcP256,
            97 => Family::EcP384,
            _ => return Err("unsupported EC curve".into()),
        };
        return Ok(Material::Ec { curve, point });
    }
    if let Ok(key) = DecodingKey::from_ed_pem(pem) {
        let x = der(&key);
        if x.len() != 32 {
            return Err("unsupported OKP key".into());
        }
        return Ok(Material::Ed25519 { x });
    }
    Err("not a PEM-encoded RSA, EC or Ed25519 public key".into())
}

/// Just enough DER to read `RSAPublicKey ::= SEQUENCE { n INTEGER, e INTEGER }`.
mod der {
    fn read(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
        let (&t, rest) = input.split_first()?;
        if t != tag {
            return None;
        }
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (first as usize, rest)
        } else {
            let count = (first & 0x7f) as usize;
            if count == 0 || count > 4 || rest.len() < count {
                return None;
            }
            let len = rest[..count]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | *b as usize);
            (len, &rest[count..])
        };
        if rest.len() < len {
            return None;
        }
        Some(rest.split_at(len))
    }

    pub(super) fn rsa_public_key(input: &[u8]) -> Option<(&[u8], &[u8])> {
        let (seq, _) = read(input, 0x30)?;
        let (n, rest) = read(seq, 0x02)?;
        let (e, rest) = read(rest, 0x02)?;
        rest.is_empty().then_some((n, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_reader() {
        // SEQUENCE { INTEGER 0x00c1, INTEGER 0x010001 }
        let der = [
            0x30, 0x09, 0x02, 0x02, 0x00, 0xc1, 0x02, 0x03, 0x01, 0x00, 0x01,
        ];
        let (n, e) = der::rsa_public_key(&der).unwrap();
        assert_eq!((n, e), (&[0x00, 0xc1][..], &[1, 0, 1][..]));
        assert!(der::rsa_public_key(&der[..5]).is_none());
        assert!(der::rsa_public_key(&[0x31, 0]).is_none());
    }
}
