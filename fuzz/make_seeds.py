"""Write the committed seed corpora of the fuzz targets to fuzz/seeds/<target>/.

verify: the attack suite's tokens and valid controls (tests/support/attacks.py,
PyJWT, jwcrypto, raw signing); jwks: its JWKS document, every single key of it,
and malformed documents; token_response: token-endpoint answers (2-byte status
then body); credentials: credential header lines. Run with the test venv:

    .venv/bin/python fuzz/make_seeds.py
"""
import hashlib
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEEDS = os.path.join(ROOT, "fuzz", "seeds")


def write(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha256(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tests", "support", "attacks.py"), "https://id.example", "a"],
        check=True, capture_output=True,
    ).stdout
    suite = json.loads(out)
    for token in suite["valid"].values():
        write("verify", token)
    for attack in suite["attacks"]:
        write("verify", attack["token"])

    jwks = suite["jwks"]
    write("jwks", json.dumps(jwks))
    for key in jwks["keys"]:
        write("jwks", json.dumps(key))
        write("jwks", json.dumps({"keys": [key, key]}))
    for doc in ['{"keys":[]}', '{"keys":{}}', '{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}',
                '{"keys":[{"kty":"EC","crv":"P-256","x":"","y":""}]}', '{"keys":[null, 1, "x"]}',
                '{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}']:
        write("jwks", doc)

    answers = [
        (200, {"access_token": "abc.def.ghi", "token_type": "Bearer", "expires_in": 300}),
        (200, {"access_token": "abc", "token_type": "bearer", "expires_in": "300"}),
        (200, {"access_token": "abc", "token_type": "DPoP", "expires_in": 300}),
        (200, {"access_token": "", "token_type": "Bearer"}),
        (200, {"access_token": "a", "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
               "token_type": "N_A", "expires_in": 60}),
        (400, {"error": "invalid_grant", "error_description": "expired"}),
        (401, {"error": "invalid_client"}),
        (503, "unavailable"),
        (200, "not json"),
        (200, {"access_token": 1, "expires_in": -5}),
    ]
    for status, body in answers:
        body = body if isinstance(body, str) else json.dumps(body)
        write("token_response", status.to_bytes(2, "big") + body.encode())

    valid = next(iter(suite["valid"].values()))
    for lines in [f"Bearer {valid}", f"bearer  {valid}", f"Bearer {valid}\nBearer {valid}",
                  "Bearer", "Bearer ", "Basic YWxhZGRpbjpvcGVuc2VzYW1l", f"DPoP {valid}",
                  "Bearer a b", "Bearer ~+/=", "Bearer \x00"]:
        write("credentials", lines)


if __name__ == "__main__":
    main()
