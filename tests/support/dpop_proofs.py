"""Mint DPoP proofs (RFC 9449) with jwcrypto, an implementation independent of
the crate.

Usage: dpop_proofs.py < CASES_JSON
       dpop_proofs.py --self-test

Reads one JSON object on stdin:
  {"cases": [{"name": str, "htm": str, "htu": str,
              "token": str|null,   # access token; adds "ath" when not null
              "iat": int|null,     # unix seconds; default now
              "jti": str|null,     # default 16 random bytes, base64url
              "nonce": str|null,   # claim omitted when null
              "variant": str,      # default "valid"
              "key": "main"|"other"}, ...]}   # default "main"
and optionally "keys": the "keys" object of an earlier run's output, to sign
with the same keys again (a token bound to "jkt" is minted in between).
Prints one JSON object:
  {"jkt": ..., "other_jkt": ..., "rsa_jkt": ..., "proofs": {name: proof},
   "keys": {"main": private JWK, "other": ..., "rsa": ...}}
where the *_jkt are RFC 7638 SHA-256 thumbprints (base64url) of the fresh
main and other EC P-256 keys and of the RSA-2048 key used by rs256/ps256.

A valid proof has protected header {"typ": "dpop+jwt", "alg": "ES256",
"jwk": {kty, crv, x, y}} and claims jti, htm, htu, iat, ath (when token),
nonce (when given). Each other variant changes exactly one thing:
  rs256, ps256        RSA key, alg RS256/PS256, jwk {kty, n, e}
  alg_none            alg "none", empty signature ("header.payload.")
  hmac                alg HS256, jwk {"kty": "oct", "k": secret}, HMAC-signed
  private_jwk         header jwk also carries the private "d"
  wrong_typ, no_typ   typ "JWT" / no typ
  no_jwk              no jwk header
  jwk_with_kid_only   "kid" (the key's thumbprint) instead of "jwk"
  x5c                 jwk plus "x5c": ["AAAA"]
  no_ath, wrong_ath   ath omitted / ath of token + "x" (wrong_ath needs a token)
  no_jti, no_iat, no_htm, no_htu   that claim omitted
  iat_string          iat as a JSON string
  signed_by_other     header jwk of the chosen key, signed by the other EC key
  bad_signature       valid proof with one bit of the signature's last byte
                      flipped (still canonical base64url)
Unknown variant or key, unknown case field, duplicate name: exit 2, stderr.
"""
import base64
import hashlib
import json
import os
import sys
import time

from jwcrypto import jwk, jws

VARIANTS = {
    "valid", "rs256", "ps256", "alg_none", "hmac", "private_jwk", "wrong_typ",
    "no_typ", "no_jwk", "no_ath", "wrong_ath", "bad_signature", "no_jti",
    "no_iat", "no_htm", "no_htu", "iat_string", "signed_by_other",
    "jwk_with_kid_only", "x5c",
}
FIELDS = {"name", "htm", "htu", "token", "iat", "jti", "nonce", "variant", "key"}


class UsageError(Exception):
    pass


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def compact_json(obj):
    return json.dumps(obj, separators=(",", ":"))


def ath(token):
    try:
        return b64(hashlib.sha256(token.encode("ascii")).digest())
    except UnicodeEncodeError:
        raise UsageError("token must be ASCII")


def make_keys():
    return {
        "main": jwk.JWK.generate(kty="EC", crv="P-256"),
        "other": jwk.JWK.generate(kty="EC", crv="P-256"),
        "rsa": jwk.JWK.generate(kty="RSA", size=2048),
    }


def public_jwk(key):
    members = ("kty", "crv", "x", "y") if key["kty"] == "EC" else ("kty", "n", "e")
    d = key.export_public(as_dict=True)
    return {m: d[m] for m in members}


def sign(header, claims, key):
    """A compact JWS over `claims` with `header` as the protected header."""
    token = jws.JWS(compact_json(claims).encode())
    token.add_signature(key, None, compact_json(header))
    return token.serialize(compact=True)


def flip_signature(proof):
    head, payload, sig = proof.split(".")
    raw = bytearray(unb64(sig))
    raw[-1] ^= 1
    flipped = b64(bytes(raw))
    assert flipped[-1] != sig[-1]
    return f"{head}.{payload}.{flipped}"


def claims_for(case, variant, now):
    c = {
        "jti": case.get("jti") or b64(os.urandom(16)),
        "htm": case["htm"],
        "htu": case["htu"],
        "iat": now if case.get("iat") is None else case["iat"],
    }
    token = case.get("token")
    if token is not None:
        c["ath"] = ath(token)
    if case.get("nonce") is not None:
        c["nonce"] = case["nonce"]

    if variant == "no_ath":
        c.pop("ath", None)
    elif variant == "wrong_ath":
        if token is None:
            raise UsageError(f"case {case['name']!r}: wrong_ath needs a token")
        c["ath"] = ath(token + "x")
    elif variant in ("no_jti", "no_iat", "no_htm", "no_htu"):
        del c[variant[3:]]
    elif variant == "iat_string":
        c["iat"] = str(c["iat"])
    return c


def proof_for(case, keys, now):
    variant = case.get("variant") or "valid"
    if variant not in VARIANTS:
        raise UsageError(f"case {case.get('name')!r}: unknown variant {variant!r}")
    key_name = case.get("key") or "main"
    if key_name not in ("main", "other"):
        raise UsageError(f"case {case.get('name')!r}: unknown key {key_name!r}")
    key = keys[key_name]
    claims = claims_for(case, variant, now)
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": public_jwk(key)}
    signer = key

    if variant in ("rs256", "ps256"):
        signer = keys["rsa"]
        header.update(alg=variant.upper(), jwk=public_jwk(signer))
    elif variant == "alg_none":
        header["alg"] = "none"
        return f"{b64(compact_json(header))}.{b64(compact_json(claims))}."
    elif variant == "hmac":
        secret = os.urandom(32)
        header.update(alg="HS256", jwk={"kty": "oct", "k": b64(secret)})
        signer = jwk.JWK(kty="oct", k=b64(secret))
    elif variant == "private_jwk":
        d = key.export_private(as_dict=True)
        header["jwk"] = {m: d[m] for m in ("kty", "crv", "x", "y", "d")}
    elif variant == "wrong_typ":
        header["typ"] = "JWT"
    elif variant == "no_typ":
        del header["typ"]
    elif variant == "no_jwk":
        del header["jwk"]
    elif variant == "jwk_with_kid_only":
        del header["jwk"]
        header["kid"] = key.thumbprint()
    elif variant == "x5c":
        header["x5c"] = ["AAAA"]
    elif variant == "signed_by_other":
        signer = keys["other" if key_name == "main" else "main"]

    proof = sign(header, claims, signer)
    return flip_signature(proof) if variant == "bad_signature" else proof


def mint(request, keys, now=None):
    now = int(time.time()) if now is None else now
    if not isinstance(request, dict) or not isinstance(request.get("cases"), list):
        raise UsageError('stdin must be {"cases": [...]}')
    proofs = {}
    for case in request["cases"]:
        if not isinstance(case, dict):
            raise UsageError(f"case must be an object: {case!r}")
        unknown = set(case) - FIELDS
        if unknown:
            raise UsageError(f"case {case.get('name')!r}: unknown fields {sorted(unknown)}")
        for field in ("name", "htm", "htu"):
            if not isinstance(case.get(field), str):
                raise UsageError(f"case {case.get('name')!r}: {field} must be a string")
        if case["name"] in proofs:
            raise UsageError(f"duplicate case name {case['name']!r}")
        proofs[case["name"]] = proof_for(case, keys, now)
    return {
        "jkt": keys["main"].thumbprint(),
        "other_jkt": keys["other"].thumbprint(),
        "rsa_jkt": keys["rsa"].thumbprint(),
        "proofs": proofs,
    }


def decode(proof):
    head, payload, _ = proof.split(".")
    return json.loads(unb64(head)), json.loads(unb64(payload))


def verifies(proof):
    """Whether the proof's signature checks out against its own header jwk."""
    header, _ = decode(proof)
    try:
        t = jws.JWS()
        t.deserialize(proof, key=jwk.JWK(**header["jwk"]), alg=header["alg"])
        return True
    except (jws.InvalidJWSSignature, jws.InvalidJWSObject):
        return False


def ec_thumbprint_by_hand(public):
    members = {m: public[m] for m in ("crv", "kty", "x", "y")}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True)
    return b64(hashlib.sha256(canonical.encode()).digest())


def self_test():
    keys = make_keys()
    token = "access.token.value"
    base = {"htm": "GET", "htu": "https://api.example/images", "token": token}
    request = {"cases": [dict(base, name=v, variant=v) for v in sorted(VARIANTS)]
               + [{"name": "other_key", "htm": "POST", "htu": "https://api.example/x",
                   "token": None, "iat": 1700000000, "jti": "fixed", "nonce": "n-1",
                   "key": "other"}]}
    out = mint(request, keys)
    proofs = out["proofs"]
    checks = []

    def check(what, ok):
        checks.append((what, bool(ok)))

    for name, k in (("jkt", "main"), ("other_jkt", "other")):
        check(f"{name} matches RFC 7638 by hand",
              out[name] == ec_thumbprint_by_hand(keys[k].export_public(as_dict=True)))

    header, claims = decode(proofs["valid"])
    check("valid header", header == {"typ": "dpop+jwt", "alg": "ES256", "jwk": public_jwk(keys["main"])})
    check("valid claims", set(claims) == {"jti", "htm", "htu", "iat", "ath"}
          and claims["ath"] == b64(hashlib.sha256(token.encode()).digest())
          and len(unb64(claims["jti"])) == 16 and isinstance(claims["iat"], int))
    header, claims = decode(proofs["other_key"])
    check("other key header", ec_thumbprint_by_hand(header["jwk"]) == out["other_jkt"])
    check("explicit fields", claims == {"jti": "fixed", "htm": "POST", "htu": "https://api.example/x",
                                        "iat": 1700000000, "nonce": "n-1"})
    check("rsa_jkt", jwk.JWK(**decode(proofs["rs256"])[0]["jwk"]).thumbprint() == out["rsa_jkt"])

    # Each variant differs from "valid" only where it says (jti aside: fresh per proof).
    valid_h, valid_c = decode(proofs["valid"])
    expected = {
        "wrong_typ": ({"typ": "JWT"}, {}), "no_typ": ({"typ": None}, {}),
        "no_jwk": ({"jwk": None}, {}), "x5c": ({"x5c": ["AAAA"]}, {}),
        "jwk_with_kid_only": ({"jwk": None, "kid": out["jkt"]}, {}),
        "alg_none": ({"alg": "none"}, {}), "no_ath": ({}, {"ath": None}),
        "wrong_ath": ({}, {"ath": b64(hashlib.sha256((token + "x").encode()).digest())}),
        "no_iat": ({}, {"iat": None}), "no_htm": ({}, {"htm": None}),
        "no_htu": ({}, {"htu": None}), "no_jti": ({}, {"jti": None}),
        "iat_string": ({}, {"iat": str(valid_c["iat"])}),
        "signed_by_other": ({}, {}), "bad_signature": ({}, {}),
    }
    for name, (h_over, c_over) in expected.items():
        h, c = decode(proofs[name])
        want_h = {k: v for k, v in dict(valid_h, **h_over).items() if v is not None}
        want_c = {k: v for k, v in dict(valid_c, **c_over).items() if v is not None}
        c.pop("jti", None)
        want_c.pop("jti", None)
        check(f"{name} changes only what it says", h == want_h and c == want_c)

    must_verify = {"valid", "other_key", "rs256", "ps256", "hmac", "private_jwk", "wrong_typ",
                   "no_typ", "no_ath", "wrong_ath", "no_jti", "no_iat", "no_htm", "no_htu",
                   "iat_string", "x5c"}
    for name in sorted(must_verify):
        check(f"{name} verifies with its header jwk", verifies(proofs[name]))
    for name in ("bad_signature", "signed_by_other"):
        check(f"{name} does not verify", not verifies(proofs[name]))
    check("bad_signature is one flipped bit away from a valid proof",
          verifies(flip_signature(proofs["bad_signature"])))
    check("alg_none has an empty signature", proofs["alg_none"].endswith(".")
          and decode(proofs["alg_none"])[0]["alg"] == "none")
    check("no_jwk / kid only", "jwk" not in decode(proofs["no_jwk"])[0]
          and decode(proofs["jwk_with_kid_only"])[0].get("kid") == out["jkt"]
          and "jwk" not in decode(proofs["jwk_with_kid_only"])[0])
    check("private_jwk carries d", "d" in decode(proofs["private_jwk"])[0]["jwk"])

    try:
        mint({"cases": [dict(base, name="x", variant="bogus")]}, keys)
        check("unknown variant refused", False)
    except UsageError:
        check("unknown variant refused", True)

    failed = [what for what, ok in checks if not ok]
    for what, ok in checks:
        print(f"{'ok  ' if ok else 'FAIL'} {what}", file=sys.stderr)
    return 1 if failed else 0


def main():
    if sys.argv[1:] == ["--self-test"]:
        sys.exit(self_test())
    if sys.argv[1:]:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    try:
        request = json.load(sys.stdin)
        given = request.get("keys") if isinstance(request, dict) else None
        keys = ({name: jwk.JWK(**given[name]) for name in ("main", "other", "rsa")}
                if given else make_keys())
        out = mint(request, keys)
        out["keys"] = {name: key.export_private(as_dict=True) for name, key in keys.items()}
    except (UsageError, json.JSONDecodeError) as e:
        print(f"dpop_proofs.py: {e}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
