"""Mint keys and tokens with PyJWT, an implementation independent of the crate.

Usage: pyjwt_tokens.py USER_ISSUER SERVICE_ISSUER AUDIENCE
Prints one JSON object: {"user_jwks": ..., "service_jwks": ..., "tokens": {name: token}}.
"""
import base64
import hashlib
import hmac
import json
import sys
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm


def jwk(public_key, algorithm_cls, kid, alg, **extra):
    d = json.loads(algorithm_cls.to_jwk(public_key))
    d.update({"kid": kid, "alg": alg, "use": "sig"}, **extra)
    return d


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main():
    user_iss, service_iss, aud = sys.argv[1:4]
    now = int(time.time())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ed_key = ed25519.Ed25519PrivateKey.generate()
    weak_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    svc_key = ec.generate_private_key(ec.SECP256R1())

    user_jwks = {"keys": [
        jwk(rsa_key.public_key(), RSAAlgorithm, "rsa", "RS256"),
        jwk(ec_key.public_key(), ECAlgorithm, "ec", "ES256"),
        jwk(ed_key.public_key(), OKPAlgorithm, "ed", "EdDSA"),
        # A 1024-bit key and an encryption key: the server must skip both.
        jwk(weak_key.public_key(), RSAAlgorithm, "weak", "RS256"),
        jwk(rsa_key.public_key(), RSAAlgorithm, "enc", "RS256", use="enc"),
    ]}
    service_jwks = {"keys": [jwk(svc_key.public_key(), ECAlgorithm, "svc", "ES256")]}

    def claims(sub, **over):
        c = {"iss": user_iss, "sub": sub, "aud": aud, "iat": now, "exp": now + 600,
             "scope": "images:read images:write images:delete"}
        c.update(over)
        return {k: v for k, v in c.items() if v is not None}

    def sign(c, key, alg, kid, **headers):
        return jwt.encode(c, key, algorithm=alg, headers={"kid": kid, **headers})

    rsa_pub_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = b64(json.dumps({"alg": "HS256", "kid": "rsa", "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims("alice")).encode())
    confused_sig = b64(hmac.new(rsa_pub_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest())

    tokens = {
        "alice_rs256": sign(claims("alice"), rsa_key, "RS256", "rsa"),
        "alice_es256": sign(claims("alice"), ec_key, "ES256", "ec"),
        "alice_eddsa": sign(claims("alice"), ed_key, "EdDSA", "ed"),
        "alice_float_exp": sign(claims("alice", exp=now + 600.25), rsa_key, "RS256", "rsa"),
        "alice_no_kid": jwt.encode(claims("alice"), ed_key, algorithm="EdDSA"),
        "alice_ps256": sign(claims("alice"), rsa_key, "PS256", "rsa"),
        "bob_rs256": sign(claims("bob"), rsa_key, "RS256", "rsa"),
        "expired": sign(claims("alice", exp=now - 3600, iat=now - 7200), rsa_key, "RS256", "rsa"),
        "not_yet_valid": sign(claims("alice", nbf=now + 3600), rsa_key, "RS256", "rsa"),
        "wrong_audience": sign(claims("alice", aud="billing"), rsa_key, "RS256", "rsa"),
        "wrong_issuer": sign(claims("alice", iss=user_iss + "/"), rsa_key, "RS256", "rsa"),
        "exp_string": sign(claims("alice", exp=str(now + 600)), rsa_key, "RS256", "rsa"),
        "no_exp": sign(claims("alice", exp=None), rsa_key, "RS256", "rsa"),
        "alg_none": jwt.encode(claims("alice"), None, algorithm="none"),
        "weak_key": sign(claims("alice"), weak_key, "RS256", "weak"),
        "enc_key": sign(claims("alice"), rsa_key, "RS256", "enc"),
        "hs256_with_public_key": f"{header}.{payload}.{confused_sig}",
        "kid_swapped": sign(claims("alice"), rsa_key, "RS256", "ec"),
        "service_archiver": sign(
            {"iss": service_iss, "sub": "archiver", "aud": aud, "iat": now, "exp": now + 600,
             "scope": "images:read images:read:any"}, svc_key, "ES256", "svc"),
        "service_weak": sign(
            {"iss": service_iss, "sub": "thumbnailer", "aud": aud, "iat": now, "exp": now + 600,
             "scope": "images:write"}, svc_key, "ES256", "svc"),
        "service_crit": sign(
            {"iss": service_iss, "sub": "archiver", "aud": aud, "iat": now, "exp": now + 600},
            svc_key, "ES256", "svc", crit=["exp"]),
    }
    print(json.dumps({"user_jwks": user_jwks, "service_jwks": service_jwks, "tokens": tokens}))


if __name__ == "__main__":
    main()
