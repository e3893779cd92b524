"""Attack tokens, made by implementations independent of the crate: PyJWT,
jwcrypto, and raw signing with `cryptography` for what libraries refuse to
produce.

Usage: attacks.py ISSUER AUDIENCE
Prints {"jwks": ..., "valid": {name: token}, "attacks": [{"class", "name", "token"}]}.
Every attack must be refused with 401; every valid token accepted.
"""
import base64
import hashlib
import hmac
import json
import sys
import time

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from jwcrypto import jwe, jwk, jws
from jwcrypto.common import json_encode
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwk_of(public_key, cls, kid, alg, **extra):
    d = json.loads(cls.to_jwk(public_key))
    d.update({"kid": kid, "alg": alg, "use": "sig"})
    d.update(extra)
    for k, v in list(d.items()):
        if v is None:
            del d[k]
    return d


def main():
    iss, aud = sys.argv[1:3]
    now = int(time.time())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    enc_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ops_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    weak_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    ps_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    jwks = {"keys": [
        jwk_of(rsa_key.public_key(), RSAAlgorithm, "rsa", "RS256"),
        jwk_of(ec_key.public_key(), ECAlgorithm, "ec", "ES256"),
        jwk_of(enc_key.public_key(), RSAAlgorithm, "enc", "RS256", use="enc"),
        jwk_of(ops_key.public_key(), RSAAlgorithm, "ops", "RS256", key_ops=["encrypt"]),
        jwk_of(weak_key.public_key(), RSAAlgorithm, "weak", "RS256"),
        jwk_of(ps_key.public_key(), RSAAlgorithm, "ps-only", "PS256"),
    ]}

    base = {"iss": iss, "sub": "alice", "aud": aud, "iat": now, "exp": now + 600, "scope": "images:read"}

    def claims(**over):
        c = dict(base)
        for k, v in over.items():
            if v is None and k.startswith("drop_"):
                c.pop(k[5:], None)
            else:
                c[k] = v
        return c

    def sign_raw(header, payload, key=rsa_key, alg="RS256"):
        """Sign exact header and payload bytes (JSON text or raw bytes)."""
        h = header if isinstance(header, (bytes, str)) else json.dumps(header)
        p = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
        signing_input = f"{b64(h)}.{b64(p)}".encode()
        if alg.startswith("HS"):
            sig = hmac.new(key, signing_input, hashlib.sha256).digest()
        elif alg == "RS256":
            sig = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        elif alg == "PS256":
            sig = key.sign(signing_input, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())
        elif alg == "ES256":
            r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
            sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        else:
            raise ValueError(alg)
        return f"{signing_input.decode()}.{b64(sig)}"

    def rs(payload=None, kid="rsa", **header):
        h = {"alg": "RS256", "typ": "JWT", "kid": kid}
        h.update(header)
        return sign_raw(h, payload if payload is not None else base)

    valid = {
        "pyjwt_rs256": jwt.encode(base, rsa_key, algorithm="RS256", headers={"kid": "rsa"}),
        "pyjwt_es256": jwt.encode(base, ec_key, algorithm="ES256", headers={"kid": "ec"}),
        "float_dates": rs(claims(exp=now + 600.5, iat=now - 0.25, nbf=now - 10.75)),
        "aud_in_array": rs(claims(aud=["other", aud])),
    }

    attacks = []

    def add(cls, name, token):
        attacks.append({"class": cls, "name": name, "token": token})

    good = valid["pyjwt_rs256"]
    gh, gp, gs = good.split(".")

    # alg: none in every casing, with and without a signature.
    for alg in ["none", "None", "NONE", "nOnE"]:
        h = b64(json.dumps({"alg": alg, "typ": "JWT"}))
        add("alg none", f"{alg} unsigned", f"{h}.{gp}.")
        add("alg none", f"{alg} with signature", f"{h}.{gp}.{gs}")
    add("alg none", "pyjwt none", jwt.encode(base, None, algorithm="none"))

    # Key confusion: HMAC with the public key as the secret.
    rsa_pem = rsa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    ec_pem = ec_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    add("key confusion", "HS256 with RSA PEM", sign_raw({"alg": "HS256", "kid": "rsa"}, base, rsa_pem, "HS256"))
    add("key confusion", "HS256 with EC PEM", sign_raw({"alg": "HS256", "kid": "ec"}, base, ec_pem, "HS256"))
    n_bytes = rsa_key.public_key().public_numbers().n.to_bytes(256, "big")
    add("key confusion", "HS256 with RSA modulus", sign_raw({"alg": "HS256", "kid": "rsa"}, base, n_bytes, "HS256"))

    # Empty and truncated signatures.
    add("signature", "empty", f"{gh}.{gp}.")
    add("signature", "truncated", f"{gh}.{gp}.{gs[:-10]}")
    add("signature", "one byte", f"{gh}.{gp}.AA")
    add("signature", "signature of another token", f"{gh}.{b64(json.dumps(claims(sub='mallory')))}.{gs}")

    # ECDSA edge cases.
    eh = b64(json.dumps({"alg": "ES256", "kid": "ec"}))
    ep = b64(json.dumps(base))
    zero = (0).to_bytes(32, "big")
    add("ecdsa", "r = s = 0", f"{eh}.{ep}.{b64(zero + zero)}")
    real = valid["pyjwt_es256"].split(".")[2]
    raw = base64.urlsafe_b64decode(real + "=" * (-len(real) % 4))
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    big = lambda v: v.to_bytes(33, "big")[-32:] if v < 2**256 else (v % 2**256).to_bytes(32, "big")
    add("ecdsa", "r >= n", f"{eh}.{ep}.{b64(big(r + P256_N) + raw[32:])}")
    add("ecdsa", "s >= n", f"{eh}.{ep}.{b64(raw[:32] + big(s + P256_N))}")
    add("ecdsa", "r = n", f"{eh}.{ep}.{b64(P256_N.to_bytes(32, 'big') + raw[32:])}")
    add("ecdsa", "DER-encoded signature", f"{eh}.{ep}.{b64(encode_dss_signature(r, s))}")

    # Keys in the header.
    attacker_jwk = jwk_of(attacker.public_key(), RSAAlgorithm, "rsa", "RS256")
    for param, value in [
        ("jwk", attacker_jwk),
        ("jku", "https://attacker.example/jwks.json"),
        ("x5u", "https://attacker.example/cert.pem"),
        ("x5c", ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]),
    ]:
        add("embedded key", f"{param} header, attacker-signed", sign_raw({"alg": "RS256", "kid": "rsa", param: value}, base, attacker))
        add("embedded key", f"{param} header, validly signed", rs(**{param: value}))
    # jwcrypto, embedding the attacker's key the library way.
    k = jwk.JWK.from_pyca(attacker)
    t = jws.JWS(json.dumps(base))
    t.add_signature(k, None, json_encode({"alg": "RS256", "jwk": k.export_public(as_dict=True)}))
    add("embedded key", "jwcrypto embedded jwk", t.serialize(compact=True))

    # kid values.
    for name, kid in [
        ("path traversal", "../../../../dev/null"),
        ("sql", "x' UNION SELECT 'secret' --"),
        ("number", 1),
        ("object", {"a": 1}),
        ("null", None),
        ("huge", "k" * 4000),
        ("empty", ""),
    ]:
        add("kid", name, rs(kid=kid))

    # Keys that must not be used.
    add("jwk rules", "use: enc", sign_raw({"alg": "RS256", "kid": "enc"}, base, enc_key))
    add("jwk rules", "key_ops without verify", sign_raw({"alg": "RS256", "kid": "ops"}, base, ops_key))
    add("jwk rules", "1024-bit RSA", sign_raw({"alg": "RS256", "kid": "weak"}, base, weak_key))
    add("jwk rules", "alg other than the header's", sign_raw({"alg": "RS256", "kid": "ps-only"}, base, ps_key))

    # Header parameters.
    add("header", "unknown crit", rs(crit=["x-custom"], **{"x-custom": 1}))
    add("header", "b64 false", rs(crit=["b64"], b64=False))
    add("header", "zip", rs(zip="DEF"))
    add("header", "nested cty JWT", rs(cty="JWT"))

    # Tokens of another kind, validly signed by the users' issuer, with the
    # claims an access token would have (RFC 8725 §3.11-3.12).
    for typ in ["secevent+jwt", "application/secevent+jwt", "logout+jwt", "dpop+jwt",
                "txntoken+jwt", "wit+jwt", "wpt+jwt", "id_token+jwt"]:
        add("token kind", f"typ {typ}", jwt.encode(base, rsa_key, algorithm="RS256",
                                                   headers={"kid": "rsa", "typ": typ}))
    set_claims = dict(base, events={"https://schemas.openid.net/secevent/risc/event-type/account-disabled": {}})
    add("token kind", "security event token (PyJWT)", jwt.encode(set_claims, rsa_key, algorithm="RS256",
                                                                 headers={"kid": "rsa", "typ": "secevent+jwt"}))

    # Other serialisations.
    jwe_key = jwk.JWK.generate(kty="oct", size=256)
    e = jwe.JWE(json.dumps(base).encode(), json_encode({"alg": "dir", "enc": "A256GCM"}))
    e.add_recipient(jwe_key)
    add("serialisation", "JWE", e.serialize(compact=True))
    add("serialisation", "JSON serialisation", json.dumps({"payload": gp, "protected": gh, "signature": gs}))
    add("serialisation", "flattened JSON in base64", b64(json.dumps({"payload": gp, "protected": gh, "signature": gs})))

    # Date claims.
    for claim in ["exp", "nbf", "iat"]:
        for name, value in [
            ("string", str(now + 600)),
            ("boolean", True),
            ("null", None),
            ("huge", 1e300),
            ("negative", -1),
            ("array", [now + 600]),
        ]:
            c = dict(base)
            c[claim] = value
            if claim == "nbf" and name == "negative":
                continue  # a negative nbf is in the past: refused as out of range below
            add("dates", f"{claim} {name}", rs(c))
    add("dates", "nbf negative", rs(claims(nbf=-5)))
    add("dates", "exp missing", rs({k: v for k, v in base.items() if k != "exp"}))
    add("dates", "expired", rs(claims(exp=now - 3600, iat=now - 7200)))

    # Issuer and audience.
    for name, value in [("trailing slash", iss + "/"), ("case", iss.upper()), ("substring", iss[:-1]), ("superstring", iss + "x")]:
        add("issuer", name, rs(claims(iss=value)))
    add("issuer", "array", rs(claims(iss=[iss])))
    for name, value in [("empty", ""), ("empty array", []), ("substring", aud[:-1]), ("number", 7), ("object", {"aud": aud}), ("array with a number", [aud, 1])]:
        add("audience", name, rs(claims(aud=value)))
    add("audience", "missing", rs({k: v for k, v in base.items() if k != "aud"}))

    # Shape and encoding.
    add("encoding", "two segments", f"{gh}.{gp}")
    add("encoding", "four segments", f"{gh}.{gp}.{gs}.{gs}")
    add("encoding", "many dots", "." * 50)
    add("encoding", "padded segments", f"{gh}==.{gp}.{gs}")
    last = gs[-1]
    # Non-canonical: flip the unused low bits of the last character.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    noncanon = alphabet[alphabet.index(last) ^ 1]
    add("encoding", "non-canonical base64url", f"{gh}.{gp}.{gs[:-1]}{noncanon}")
    std_sig = gs.replace("-", "+").replace("_", "/")
    assert std_sig != gs, "the signature has no - or _ to swap"
    add("encoding", "standard base64 alphabet", f"{gh}.{gp}.{std_sig}")
    add("encoding", "invalid UTF-8 in claims", sign_raw({"alg": "RS256", "kid": "rsa"}, json.dumps(base).encode()[:-1] + b',"x":"\xff"}'))
    add("encoding", "invalid UTF-8 in header", sign_raw(b'{"alg":"RS256","kid":"rsa","x":"\xfe"}', base))
    deep = "[" * 5000 + "]" * 5000
    add("encoding", "deep nesting", sign_raw({"alg": "RS256", "kid": "rsa"}, json.dumps(base)[:-1] + f',"deep":{deep}}}'))
    add("encoding", "oversized", rs(claims(pad="x" * 10000)))
    add("encoding", "not JSON", sign_raw({"alg": "RS256", "kid": "rsa"}, b"not json"))

    # Duplicate member names.
    payload = json.dumps(base)[:-1] + ', "sub": "mallory"}'
    add("duplicates", "duplicate sub", sign_raw({"alg": "RS256", "kid": "rsa"}, payload))
    payload = json.dumps(base)[:-1] + f', "exp": {now + 10**8}}}'
    add("duplicates", "duplicate exp", sign_raw({"alg": "RS256", "kid": "rsa"}, payload))
    add("duplicates", "duplicate alg", sign_raw('{"alg":"RS256","kid":"rsa","alg":"HS256"}', base))

    print(json.dumps({"jwks": jwks, "valid": valid, "attacks": attacks}))


if __name__ == "__main__":
    main()
