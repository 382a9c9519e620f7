"""Writes a JWKS with one fresh RSA-2048 key and bearer tokens signed with
it (RS256, iss https://bench.test, aud cart, valid for three hours: a
whole make bench).

    /usr/bin/python3 tools/bench/mint_token.py JWKS_PATH [SCOPE]
        prints one token for sub "bench"; with SCOPE it also carries
        "scope": SCOPE, e.g. cart:admin (the service's default
        JWT_ADMIN_SCOPE): an admin token that may act on every cart.
    /usr/bin/python3 tools/bench/mint_token.py JWKS_PATH --users N OUT
        writes N tokens to OUT, one per line: line i is user u-i's own
        token (sub "u-i", no scope), as a shop's clients each send their
        own.  tools/bench/scenarios.py's auth-on runs use these.
"""
import base64
import json
import sys
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def main():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pub = key.public_key().public_numbers()
    jwks = {"keys": [{"kty": "RSA", "kid": "bench", "alg": "RS256", "use": "sig",
                      "n": b64(pub.n.to_bytes(256, "big")),
                      "e": b64(pub.e.to_bytes(3, "big"))}]}
    with open(sys.argv[1], "w") as f:
        json.dump(jwks, f)
    now = int(time.time())
    head = b64(json.dumps({"alg": "RS256", "kid": "bench", "typ": "JWT"}).encode())

    def token(claims):
        claims.update({"iss": "https://bench.test", "aud": "cart", "iat": now,
                       "exp": now + 3 * 3600})
        body = b64(json.dumps(claims).encode())
        sig = key.sign((head + "." + body).encode(), padding.PKCS1v15(), hashes.SHA256())
        return head + "." + body + "." + b64(sig)

    if len(sys.argv) == 5 and sys.argv[2] == "--users":
        with open(sys.argv[4], "w") as f:
            for i in range(int(sys.argv[3])):
                f.write(token({"sub": "u-%d" % i}) + "\n")
        return
    claims = {"sub": "bench"}
    if len(sys.argv) > 2:
        claims["scope"] = sys.argv[2]
    print(token(claims))


if __name__ == "__main__":
    main()
