"""Writes a JWKS with one fresh RSA-2048 key and prints a bearer token for
sub "bench" signed with it (RS256, iss https://bench.test, aud cart, valid
for an hour).  Used by tools/bench.sh for the auth-on scenario.  With
SCOPE the token also carries "scope": SCOPE, e.g. cart:admin (the
service's default JWT_ADMIN_SCOPE): an admin token that may act on every
cart, which tools/bench/scenarios.py uses for its 10,000 users.

    /usr/bin/python3 tools/bench/mint_token.py JWKS_PATH [SCOPE]
"""
import base64
import json
import sys
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
pub = key.public_key().public_numbers()
jwks = {"keys": [{"kty": "RSA", "kid": "bench", "alg": "RS256", "use": "sig",
                  "n": b64(pub.n.to_bytes(256, "big")),
                  "e": b64(pub.e.to_bytes(3, "big"))}]}
with open(sys.argv[1], "w") as f:
    json.dump(jwks, f)
now = int(time.time())
head = b64(json.dumps({"alg": "RS256", "kid": "bench", "typ": "JWT"}).encode())
claims = {"sub": "bench", "iss": "https://bench.test", "aud": "cart",
          "iat": now, "exp": now + 3600}
if len(sys.argv) > 2:
    claims["scope"] = sys.argv[2]
body = b64(json.dumps(claims).encode())
sig = key.sign((head + "." + body).encode(), padding.PKCS1v15(), hashes.SHA256())
print(head + "." + body + "." + b64(sig))
