"""Tokens shaped as each identity provider's public documentation shows
them, minted with PyJWT (independent of the crate), one RSA key per
provider.

Usage: provider_tokens.py OUT_DIR
Writes OUT_DIR/<provider>-jwks.json and prints {name: token} as JSON.

Shapes, from the providers' documentation:
- Cognito: "Understanding the access token" / "the ID token" (user pools):
  access tokens carry client_id and token_use "access", no aud; ID tokens
  carry aud (the app client) and token_use "id"; groups in cognito:groups.
- Entra ID: "Access token claims reference": v2.0 iss
  https://login.microsoftonline.com/{tid}/v2.0 with ver "2.0", v1.0 iss
  https://sts.windows.net/{tid}/ with ver "1.0"; tid, oid, scp, roles,
  azp/appid, idtyp "app" on app-only tokens; header typ JWT, kid, x5t.
- Keycloak: access tokens with typ "Bearer" in the payload, azp, realm_access
  and resource_access roles; ID tokens with typ "ID"; header typ JWT.
- Auth0: "Access token profiles": iss with a trailing slash, aud an array
  with the API and /userinfo, scope, permissions (RBAC), namespaced custom
  claims from Actions.
- Google: ID tokens (iss https://accounts.google.com or accounts.google.com,
  aud the client, azp, email, email_verified).
- Okta: custom authorization server access tokens (iss .../oauth2/default,
  aud api://default, cid, uid, scp as an array, ver 1).
"""
import base64
import hashlib
import json
import os
import sys
import time
import uuid

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

NOW = int(time.time())
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
OTHER_TENANT = "f8cdef31-a31e-4b4a-93e4-5f571e91255a"


def key(out_dir, provider):
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = f"{provider}-{uuid.uuid4().hex[:8]}"
    jwk = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    x5t = base64.urlsafe_b64encode(hashlib.sha1(der).digest()).rstrip(b"=").decode()
    jwk.update({"kid": kid, "use": "sig", "alg": "RS256", "x5t": x5t})
    with open(os.path.join(out_dir, f"{provider}-jwks.json"), "w") as f:
        json.dump({"keys": [jwk]}, f)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem, kid, x5t


def sign(k, claims, **header):
    pem, kid, _ = k
    return jwt.encode(claims, pem, algorithm="RS256", headers={"kid": kid, "typ": "JWT", **header})


def main():
    out = sys.argv[1]
    t = {}
    life = {"iat": NOW, "exp": NOW + 3600}

    cognito = key(out, "cognito")
    pool = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Example"
    access = {
        "sub": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
        "cognito:groups": ["image-editors"],
        "iss": pool,
        "version": 2,
        "client_id": "4ivt1vbn1example",
        "origin_jti": str(uuid.uuid4()),
        "event_id": str(uuid.uuid4()),
        "token_use": "access",
        "scope": "aws.cognito.signin.user.admin openid profile",
        "auth_time": NOW,
        "jti": str(uuid.uuid4()),
        "username": "alice",
        **life,
    }
    t["cognito_access"] = sign(cognito, access)
    t["cognito_other_client"] = sign(cognito, {**access, "client_id": "7otherclientexample"})
    t["cognito_id"] = sign(
        cognito,
        {
            "sub": access["sub"],
            "aud": "4ivt1vbn1example",
            "cognito:groups": ["image-editors"],
            "email_verified": True,
            "token_use": "id",
            "auth_time": NOW,
            "iss": pool,
            "cognito:username": "alice",
            "email": "alice@example.com",
            **life,
        },
    )

    entra = key(out, "entra")
    _, _, x5t = entra
    v2 = {
        "aud": "api://image-store",
        "iss": f"https://login.microsoftonline.com/{TENANT}/v2.0",
        "nbf": NOW,
        "aio": "AXQAi/8TAAAA",
        "azp": "6e74172b-be56-4843-9ff4-e66a39bb12e3",
        "azpacr": "0",
        "name": "Alice",
        "oid": "690222be-ff1a-4d56-abd1-7e4f7d38e474",
        "preferred_username": "alice@contoso.com",
        "rh": "I",
        "roles": ["Images.Reader"],
        "scp": "Images.Read",
        "sub": "HKZpfaHyWadeOouYlitjrI-KffTm222X5rrV3xDqfKQ",
        "tid": TENANT,
        "uti": "fqiBqXLPj0eQa82S-IYFAA",
        "ver": "2.0",
        "idtyp": "user",
        **life,
    }
    t["entra_v2"] = sign(entra, v2, x5t=x5t)
    t["entra_v1"] = sign(
        entra,
        {
            "aud": "api://image-store",
            "iss": f"https://sts.windows.net/{TENANT}/",
            "nbf": NOW,
            "appid": "6e74172b-be56-4843-9ff4-e66a39bb12e3",
            "oid": v2["oid"],
            "scp": "Images.Read",
            "sub": v2["sub"],
            "tid": TENANT,
            "upn": "alice@contoso.com",
            "ver": "1.0",
            **life,
        },
        x5t=x5t,
    )
    t["entra_other_tenant"] = sign(
        entra,
        {**v2, "iss": f"https://login.microsoftonline.com/{OTHER_TENANT}/v2.0", "tid": OTHER_TENANT},
        x5t=x5t,
    )
    # An iss of the allowed tenant with another tenant's tid: never a wildcard.
    t["entra_tid_mismatch"] = sign(entra, {**v2, "tid": OTHER_TENANT}, x5t=x5t)
    t["entra_app_only"] = sign(
        entra,
        {**v2, "idtyp": "app", "roles": ["Images.Reader"], "sub": v2["oid"]},
        x5t=x5t,
    )

    keycloak = key(out, "keycloak")
    realm = "https://kc.example.com/realms/main"
    kc = {
        "jti": str(uuid.uuid4()),
        "iss": realm,
        "aud": ["image-store", "account"],
        "sub": "f7d8c3a2-9b1e-4c5d-8e7f-1a2b3c4d5e6f",
        "typ": "Bearer",
        "azp": "web-app",
        "session_state": str(uuid.uuid4()),
        "acr": "1",
        "realm_access": {"roles": ["offline_access", "uma_authorization", "image-admin"]},
        "resource_access": {
            "image-store": {"roles": ["uploader"]},
            "account": {"roles": ["manage-account"]},
        },
        "scope": "openid email profile",
        "sid": str(uuid.uuid4()),
        "email_verified": True,
        "preferred_username": "alice",
        **life,
    }
    t["keycloak_access"] = sign(keycloak, kc)
    t["keycloak_id"] = sign(keycloak, {**kc, "typ": "ID", "aud": "image-store"})

    auth0 = key(out, "auth0")
    t["auth0_access"] = sign(
        auth0,
        {
            "iss": "https://example.eu.auth0.com/",
            "sub": "auth0|5f7c8ec7c33c6c004bbafe82",
            "aud": ["https://images.example.com", "https://example.eu.auth0.com/userinfo"],
            "azp": "my-client-id",
            "scope": "openid profile images:read",
            "permissions": ["images:read"],
            "https://images.example.com/roles": ["editor"],
            **life,
        },
    )

    google = key(out, "google")
    gid = {
        "iss": "https://accounts.google.com",
        "azp": "1234987819200.apps.googleusercontent.com",
        "aud": "1234987819200.apps.googleusercontent.com",
        "sub": "10769150350006150715113082367",
        "email": "jsmith@example.com",
        "email_verified": True,
        "at_hash": "HK6E_P6Dh8Y93mRNtsDB1Q",
        "hd": "example.com",
        **life,
    }
    t["google_id"] = sign(google, gid)
    t["google_id_bare_iss"] = sign(google, {**gid, "iss": "accounts.google.com"})
    t["google_unverified"] = sign(google, {**gid, "email_verified": False})

    okta = key(out, "okta")
    t["okta_access"] = sign(
        okta,
        {
            "ver": 1,
            "jti": "AT.0mP4JKAZX1iACIT4vbEDF7LpvDVjxypPMf0D7uX39RE",
            "iss": "https://example.okta.com/oauth2/default",
            "aud": "api://default",
            "cid": "0oaosswbfyiwfXo0D0h7",
            "uid": "00uid4BxXw6I6TV4m0g3",
            "scp": ["openid", "images:read"],
            "sub": "alice@example.com",
            "groups": ["Everyone", "image-editors"],
            **life,
        },
    )
    print(json.dumps(t))


main()
