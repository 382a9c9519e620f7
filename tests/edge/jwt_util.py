"""Tokens, keys and JWKS for the end-to-end auth and rate-limit tests.

Keys are generated at test time (RSA-2048, EC P-256) with Debian's
python3-cryptography; nothing secret is stored in the repository.

    k = RsaKey("kid-a")
    jwks = make_jwks(k, EcKey("kid-e"))
    tok = sign(claims("alice", ISS, AUD), k)                # RS256
    bad = malicious("alg_none", claims(...), k)

JwksServer is a loopback HTTP server that serves a JWKS (Cognito layout:
/<pool>/.well-known/jwks.json) and counts every request it gets.
"""

import base64
import datetime
import hashlib
import hmac
import http.server
import json
import os
import tempfile
import threading
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import \
    decode_dss_signature
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Test"
AUDIENCE = "cart-api"
CLIENT_ID = "3n4b5urk1ft4fl3mg5e62d9ado"
POOL_PATH = "/us-east-1_Test/.well-known/jwks.json"


def b64u(data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64u_json(obj):
    return b64u(json.dumps(obj, separators=(",", ":")).encode("utf-8"))


def b64u_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _int_bytes(n, length=None):
    if length is None:
        length = max(1, (n.bit_length() + 7) // 8)
    return n.to_bytes(length, "big")


class RsaKey:
    alg = "RS256"

    def __init__(self, kid, bits=2048):
        self.kid = kid
        self.private = rsa.generate_private_key(public_exponent=65537,
                                                key_size=bits)
        self.public = self.private.public_key()

    def jwk(self, with_alg=True):
        nums = self.public.public_numbers()
        d = {"kty": "RSA", "kid": self.kid, "use": "sig",
             "n": b64u(_int_bytes(nums.n)), "e": b64u(_int_bytes(nums.e))}
        if with_alg:
            d["alg"] = "RS256"
        return d

    def x5c(self, ca_issuers_url=None):
        """A JWS x5c chain: one self-signed certificate of this key, as
        base64 (not base64url) DER.  ca_issuers_url: an Authority
        Information Access URL in it, where a chain builder would fetch
        the issuer from."""
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.kid)])
        now = datetime.datetime.now(datetime.timezone.utc)
        b = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
             .public_key(self.public).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(days=1))
             .not_valid_after(now + datetime.timedelta(days=30)))
        if ca_issuers_url:
            b = b.add_extension(x509.AuthorityInformationAccess([
                x509.AccessDescription(
                    AuthorityInformationAccessOID.CA_ISSUERS,
                    x509.UniformResourceIdentifier(ca_issuers_url))]),
                critical=False)
        cert = b.sign(self.private, hashes.SHA256())
        return [base64.b64encode(
            cert.public_bytes(serialization.Encoding.DER)).decode("ascii")]

    def public_pem(self):
        return self.public.public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo)

    def sign_bytes(self, data):
        return self.private.sign(data, padding.PKCS1v15(), hashes.SHA256())


class EcKey:
    alg = "ES256"

    def __init__(self, kid):
        self.kid = kid
        self.private = ec.generate_private_key(ec.SECP256R1())
        self.public = self.private.public_key()

    def jwk(self, with_alg=True):
        nums = self.public.public_numbers()
        d = {"kty": "EC", "kid": self.kid, "use": "sig", "crv": "P-256",
             "x": b64u(_int_bytes(nums.x, 32)),
             "y": b64u(_int_bytes(nums.y, 32))}
        if with_alg:
            d["alg"] = "ES256"
        return d

    def sign_bytes(self, data):
        der = self.private.sign(data, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return _int_bytes(r, 32) + _int_bytes(s, 32)   # JWS: raw r||s


def make_jwks(*keys):
    return {"keys": [k.jwk() for k in keys]}


def write_jwks_file(*keys, path=None):
    """Writes the JWKS to path (a new temp file if None); returns the path."""
    if path is None:
        fd, path = tempfile.mkstemp(prefix="jwks-", suffix=".json")
        os.close(fd)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(make_jwks(*keys), f)
    os.replace(tmp, path)
    return path


def claims(sub, iss=ISSUER, aud=AUDIENCE, ttl=300, **extra):
    """A claim set valid now for ttl seconds; extra overrides/adds claims
    (a value of None removes the claim)."""
    now = int(time.time())
    c = {"sub": sub, "iss": iss, "aud": aud, "iat": now, "exp": now + ttl}
    for k, v in extra.items():
        c[k.replace("__", ":")] = v
    return {k: v for k, v in c.items() if v is not None}


def cognito_access_claims(sub, client_id=CLIENT_ID, iss=ISSUER, ttl=300,
                          scope="aws.cognito.signin.user.admin",
                          groups=None, **extra):
    """An Amazon Cognito access token's claims: no aud, client_id."""
    now = int(time.time())
    c = {"sub": sub, "iss": iss, "client_id": client_id, "token_use": "access",
         "scope": scope, "auth_time": now, "iat": now, "exp": now + ttl,
         "jti": os.urandom(8).hex(), "username": sub}
    if groups is not None:
        c["cognito:groups"] = list(groups)
    c.update(extra)
    return {k: v for k, v in c.items() if v is not None}


def sign(payload, key, alg=None, kid=None, header_extra=None, typ="JWT"):
    """Compact JWS of payload (dict, or raw bytes) signed with key.

    alg defaults to the key's algorithm, kid to the key's kid (kid=False
    leaves it out); header_extra is merged into the header."""
    header = {"alg": alg or key.alg}
    if typ:
        header["typ"] = typ
    if kid is not False:
        header["kid"] = kid if kid is not None else key.kid
    if header_extra:
        header.update(header_extra)
    h = b64u_json(header)
    p = b64u(payload) if isinstance(payload, (bytes, str)) else \
        b64u_json(payload)
    signing_input = ("%s.%s" % (h, p)).encode("ascii")
    return "%s.%s.%s" % (h, p, b64u(key.sign_bytes(signing_input)))


def bearer(token):
    return {"Authorization": "Bearer " + token}


def malicious(kind, payload, key, ec_key=None):
    """A token that must be refused; kind names the attack.

    key is a key the server trusts (RSA unless noted), payload valid claims.
      alg_none        header alg "none", empty signature
      alg_none_sig    alg "none" but keeps a real RS256 signature
      hs256_pubkey    HS256 with the RSA public key PEM as the HMAC secret
      tampered        a valid token whose payload was changed afterwards
      bad_b64         '+' and '/' and padding in the payload segment
      bad_b64_chars   a character outside base64url in the signature
      two_segments    header.payload only
      four_segments   an extra segment
      too_large       > 8192 bytes (a big claim), otherwise valid
      rs256_ec_kid    RS256 signed with key, header kid = ec_key's kid
      es256_rsa_kid   ES256 signed with ec_key, header kid = key's kid
      crit            a valid signature over a header with "crit"
      not_json        payload segment is not JSON
    """
    if kind == "alg_none":
        h = b64u_json({"alg": "none", "typ": "JWT"})
        return "%s.%s." % (h, b64u_json(payload))
    if kind == "alg_none_sig":
        good = sign(payload, key)
        _, p, s = good.split(".")
        return "%s.%s.%s" % (b64u_json({"alg": "none", "kid": key.kid}), p, s)
    if kind == "hs256_pubkey":
        h = b64u_json({"alg": "HS256", "typ": "JWT", "kid": key.kid})
        p = b64u_json(payload)
        mac = hmac.new(key.public_pem(), ("%s.%s" % (h, p)).encode(),
                       hashlib.sha256).digest()
        return "%s.%s.%s" % (h, p, b64u(mac))
    if kind == "tampered":
        good = sign(payload, key)
        h, _, s = good.split(".")
        changed = dict(payload)
        changed["sub"] = changed.get("sub", "x") + "-evil"
        changed["scope"] = "cart:admin"
        return "%s.%s.%s" % (h, b64u_json(changed), s)
    if kind == "bad_b64":
        good = sign(payload, key)
        h, p, s = good.split(".")
        # the very bytes that were signed, in the standard alphabet with
        # padding: only a lenient decoder would accept it
        std = base64.b64encode(b64u_decode(p)).decode()
        if not ("+" in std or "/" in std or "=" in std):
            std += "=="
        return "%s.%s.%s" % (h, std, s)
    if kind == "bad_b64_chars":
        good = sign(payload, key)
        h, p, s = good.split(".")
        return "%s.%s.%s" % (h, p, s[:10] + "!*" + s[12:])
    if kind == "two_segments":
        return ".".join(sign(payload, key).split(".")[:2])
    if kind == "four_segments":
        return sign(payload, key) + "." + b64u(b"x")
    if kind == "too_large":
        big = dict(payload)
        big["pad"] = "A" * 9000
        return sign(big, key)
    if kind == "rs256_ec_kid":
        return sign(payload, key, alg="RS256", kid=ec_key.kid)
    if kind == "es256_rsa_kid":
        return sign(payload, ec_key, alg="ES256", kid=key.kid)
    if kind == "crit":
        return sign(payload, key, header_extra={"crit": ["exp"]})
    if kind == "not_json":
        return sign(b"not json at all", key)
    raise ValueError("unknown malicious token kind %r" % kind)


# -- a loopback JWKS server ------------------------------------------------

class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):   # quiet
        pass

    def _answer(self, head_only=False):
        srv = self.server
        with srv.lock:
            srv.requests.append((self.command, self.path, time.monotonic()))
            body = srv.body
            path = srv.path
        if self.path.split("?")[0] != path or body is None:
            data = b'{"message":"not found"}'
            self.send_response(404)
        else:
            data = body
            self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        if not head_only:
            self.wfile.write(data)
        self.close_connection = True

    def do_GET(self):
        self._answer()

    def do_HEAD(self):
        self._answer(head_only=True)

    def do_POST(self):
        self._answer()


class JwksServer:
    """Serves a JWKS on 127.0.0.1 at path; counts the requests it gets.

    Use as a context manager or call start()/stop() (stop is idempotent)."""

    def __init__(self, *keys, path=POOL_PATH):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                     _Handler)
        self.httpd.daemon_threads = True
        self.httpd.lock = threading.Lock()
        self.httpd.requests = []
        self.httpd.path = path
        self.httpd.body = None
        self.set_keys(*keys)
        self.thread = None

    @property
    def port(self):
        return self.httpd.server_address[1]

    @property
    def url(self):
        return "http://127.0.0.1:%d%s" % (self.port, self.httpd.path)

    def set_keys(self, *keys):
        with self.httpd.lock:
            self.httpd.body = json.dumps(make_jwks(*keys)).encode()

    def set_body(self, body):
        with self.httpd.lock:
            self.httpd.body = body

    def count(self, path_only=True):
        """GETs of the JWKS path (path_only) or every request received."""
        with self.httpd.lock:
            if not path_only:
                return len(self.httpd.requests)
            return sum(1 for m, p, _ in self.httpd.requests
                       if m == "GET" and p.split("?")[0] == self.httpd.path)

    def start(self):
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.thread is not None:
            self.httpd.shutdown()
            self.thread.join(5)
            self.thread = None
        if self.httpd is not None:
            self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
