"""Mint Transaction Tokens (draft-ietf-oauth-transaction-tokens-10) with PyJWT,
shaped as the draft's example (§9.1 header, §9.2.4 body), an implementation
independent of the crate.

Usage: txn_tokens.py TRUST_DOMAIN SCOPE
       Prints one JSON object: {"jwks": ..., "tokens": {name: token}}.
       txn_tokens.py --verify JWKS TOKEN TRUST_DOMAIN
       Checks TOKEN with the draft's rules (§9.1 `typ`, §9.2 claims, §12.2:
       signature, `aud`, `exp`) and prints its claims; exits 1 otherwise.
"""
import base64
import json
import sys
import time
import uuid

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


REQUIRED = ("iat", "aud", "exp", "txn", "sub", "scope", "req_wl")


def verify(jwks_text, token, domain):
    jwks = jwt.PyJWKSet.from_json(jwks_text)
    header = jwt.get_unverified_header(token)
    if header.get("typ") != "txntoken+jwt":
        sys.exit("typ is not txntoken+jwt")
    key = next(k for k in jwks.keys if k.key_id == header.get("kid"))
    claims = jwt.decode(token, key.key, algorithms=[header["alg"]], audience=domain,
                        options={"require": ["exp", "iat", "aud", "sub"]})
    for name in REQUIRED:
        if name not in claims:
            sys.exit(f"missing {name}")
    for name in ("txn", "sub", "scope", "req_wl"):
        if not isinstance(claims[name], str) or (name != "scope" and not claims[name]):
            sys.exit(f"{name} is not a string")
    for name in ("tctx", "rctx"):
        if name in claims and not isinstance(claims[name], dict):
            sys.exit(f"{name} is not an object")
    if claims["exp"] - claims["iat"] > 3600:
        sys.exit("not short-lived")
    print(json.dumps(claims))


def main():
    if sys.argv[1] == "--verify":
        verify(*sys.argv[2:5])
        return
    domain, scope = sys.argv[1:3]
    now = int(time.time())
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": "tts-1", "alg": "RS256", "use": "sig"})
    header = {"typ": "txntoken+jwt", "alg": "RS256", "kid": "tts-1"}
    body = {
        "iat": now,
        "aud": domain,
        "exp": now + 360,
        "txn": str(uuid.uuid4()),
        "sub": "d084sdrt234fsaw34tr23t",
        "req_wl": "apigateway." + domain,
        "rctx": {"req_ip": "69.151.72.123", "authn": "face"},
        "scope": scope,
        "tctx": {"action": "BUY", "ticker": "MSFT", "quantity": "100",
                 "customer_type": {"geo": "US", "level": "VIP"}},
    }

    def sign(claims, hdr=header, k=key):
        h = dict(hdr)
        alg = h.pop("alg")
        return jwt.encode(claims, k, algorithm=alg, headers=h)

    def without(name):
        c = dict(body)
        del c[name]
        return sign(c)

    valid = sign(body)
    head, payload, sig = valid.split(".")
    widened = dict(body, scope=scope + " images:delete:any")
    tampered = ".".join([head, b64(json.dumps(widened).encode()), sig])
    tokens = {
        "valid": valid,
        "narrow": sign(dict(body, scope="images:read")),
        "expired": sign(dict(body, iat=now - 900, exp=now - 600)),
        "wrong_aud": sign(dict(body, aud="other.example")),
        "aud_array": sign(dict(body, aud=[domain])),
        "wrong_typ": sign(body, dict(header, typ="JWT")),
        "at_jwt": sign(body, dict(header, typ="at+jwt")),
        "no_typ": sign(body, {"alg": "RS256", "kid": "tts-1"}),
        "tampered": tampered,
        "other_key": sign(body, header, other),
        "with_iss": sign(dict(body, iss="https://tts.example")),
        "txn_number": sign(dict(body, txn=42)),
        "tctx_string": sign(dict(body, tctx="BUY")),
    }
    for name in ("txn", "sub", "scope", "req_wl", "iat", "exp"):
        tokens["no_" + name] = without(name)
    print(json.dumps({"jwks": {"keys": [jwk]}, "tokens": tokens, "body": body}))


if __name__ == "__main__":
    main()
