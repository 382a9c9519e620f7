"""TransactWriteItems for a DynamoDB stand-in that lacks it (dynalite 4).

dynalite implements the single-item and batch actions but not transactions.
This module gives the SigV4 proxy an honest TransactWriteItems on top of
them:

* the request is validated against botocore's DynamoDB service model (the
  shape AWS publishes), plus the service-side rules botocore does not
  encode: 1..100 items, one operation per item, no two operations on one
  item, a ClientRequestToken of 1..36 characters;
* the items are applied one by one with dynalite's own PutItem, UpdateItem
  and DeleteItem (so dynalite evaluates every condition expression and
  update expression), each asking for the old image; if any condition
  fails, or dynalite refuses an item, every applied item is restored from
  its old image and the answer is AWS's TransactionCanceledException with
  one CancellationReason per item;
* the caller (the proxy) holds one lock around every request it forwards,
  so no other request sees a half-applied transaction (serializable, as
  AWS promises against single-item operations);
* a ClientRequestToken makes a retry within 10 minutes answer like the
  first call without applying again, and a token reused with another
  request is IdempotentParameterMismatchException, as on AWS;
* ConsumedCapacity: AWS charges two write units per KB per item in a
  transaction; we return twice what dynalite reports for the items.

ConditionCheck items are refused as unsupported (the service under test
does not send them): a stand-in that cannot do something says so instead
of pretending.
"""

import base64
import hashlib
import json
import time

import botocore.session
from botocore.validate import ParamValidator

DDB = "com.amazonaws.dynamodb.v20120810#"
TOKEN_TTL_SECONDS = 600
_model = None


def _operation_input():
    global _model
    if _model is None:
        session = botocore.session.get_session()
        _model = session.get_service_model("dynamodb").operation_model(
            "TransactWriteItems").input_shape
    return _model


def _wire_to_params(shape, value):
    """JSON wire form -> botocore params: blobs arrive base64-encoded."""
    t = shape.type_name
    if t == "structure" and isinstance(value, dict):
        out = {}
        for k, v in value.items():
            member = shape.members.get(k)
            out[k] = _wire_to_params(member, v) if member is not None else v
        return out
    if t == "list" and isinstance(value, list):
        return [_wire_to_params(shape.member, v) for v in value]
    if t == "map" and isinstance(value, dict):
        return {k: _wire_to_params(shape.value, v) for k, v in value.items()}
    if t == "blob" and isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except ValueError:
            return 0          # not bytes, not str: the validator reports it
    return value


class TransactError(Exception):
    def __init__(self, aws_type, message, reasons=None):
        super().__init__(message)
        self.aws_type = aws_type
        self.message = message
        self.reasons = reasons

    def body(self):
        out = {"__type": DDB + self.aws_type, "message": self.message}
        if self.reasons is not None:
            out["CancellationReasons"] = self.reasons
        return out


def validate(req):
    """Raise TransactError(ValidationException) unless req is well formed."""
    report = ParamValidator().validate(_wire_to_params(_operation_input(), req),
                                       _operation_input())
    if report.has_errors():
        raise TransactError("ValidationException",
                            "botocore model: " + report.generate_report())
    items = req["TransactItems"]
    if not 1 <= len(items) <= 100:
        raise TransactError("ValidationException",
                            "1 validation error detected: Value at 'transactItems' "
                            "failed to satisfy constraint: Member must have length "
                            "less than or equal to 100")
    seen = set()
    for it in items:
        if len(it) != 1:
            raise TransactError("ValidationException",
                                "TransactItems can only contain one of Check, Put, "
                                "Update or Delete")
        (op, body), = it.items()
        if op == "ConditionCheck":
            raise TransactError("ValidationException",
                                "ddb_transact stand-in: ConditionCheck is not "
                                "implemented")
        key = body["Item"] if op == "Put" else body["Key"]
        ident = (body["TableName"], json.dumps({k: key.get(k) for k in ("PK", "SK")},
                                               sort_keys=True))
        if ident in seen:
            raise TransactError("ValidationException",
                                "Transaction request cannot include multiple "
                                "operations on one item")
        seen.add(ident)
    tok = req.get("ClientRequestToken")
    if tok is not None and not 1 <= len(tok) <= 36:
        raise TransactError("ValidationException",
                            "ClientRequestToken must be 1..36 characters")


def _key_of(item):
    return {k: item[k] for k in ("PK", "SK") if k in item}


class Transactor:
    """Runs TransactWriteItems through send(op, request) -> (status, dict).

    The caller serializes all requests (see module doc)."""

    def __init__(self, clock=time.time):
        self.clock = clock
        self.reset()

    def reset(self):
        self.tokens = {}      # token -> (request digest, expires, response)
        self.stats = {"transactions": 0, "committed": 0, "canceled": 0,
                      "replayed": 0, "items": 0,
                      "actions": {}}   # IAM action of each item -> count

    def run(self, req, send):
        validate(req)
        self.stats["transactions"] += 1
        digest = hashlib.sha256(json.dumps(
            {k: v for k, v in req.items() if k not in ("ReturnConsumedCapacity",)},
            sort_keys=True).encode()).hexdigest()
        tok = req.get("ClientRequestToken")
        now = self.clock()
        for t in [t for t, v in self.tokens.items() if v[1] <= now]:
            del self.tokens[t]
        if tok in self.tokens:
            seen_digest, _, response = self.tokens[tok]
            if seen_digest != digest:
                raise TransactError("IdempotentParameterMismatchException",
                                    "The request uses the same client token as a "
                                    "previous, but non-identical request.")
            self.stats["replayed"] += 1
            return response
        response = self._apply(req, send)
        if tok:
            self.tokens[tok] = (digest, now + TOKEN_TTL_SECONDS, response)
        return response

    def _apply(self, req, send):
        undo = []             # (table, key, old image or None), in order
        reasons = []
        failed = None
        units = {}
        for it in req["TransactItems"]:
            (op, body), = it.items()
            sub = {k: v for k, v in body.items()
                   if k not in ("ReturnValuesOnConditionCheckFailure",)}
            sub["ReturnValues"] = "ALL_OLD"
            sub["ReturnConsumedCapacity"] = "TOTAL"
            action = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem"}[op]
            key = _key_of(body["Item"] if op == "Put" else body["Key"])
            status, resp = send(action, sub)
            self.stats["items"] += 1
            self.stats["actions"][action] = self.stats["actions"].get(action, 0) + 1
            if status == 200:
                undo.append((body["TableName"], key, resp.get("Attributes")))
                cc = resp.get("ConsumedCapacity") or {}
                units[body["TableName"]] = (units.get(body["TableName"], 0.0)
                                            + 2 * float(cc.get("CapacityUnits", 1)))
                reasons.append({"Code": "None"})
                continue
            kind = (resp.get("__type") or "").split("#")[-1]
            if kind == "ConditionalCheckFailedException":
                reason = {"Code": "ConditionalCheckFailed",
                          "Message": "The conditional request failed"}
                if body.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD":
                    st, got = send("GetItem", {"TableName": body["TableName"],
                                               "Key": key, "ConsistentRead": True})
                    if st == 200 and got.get("Item"):
                        reason["Item"] = got["Item"]
                reasons.append(reason)
                failed = failed or ("canceled", None)
            elif kind == "ValidationException":
                reasons.append({"Code": "ValidationError",
                                "Message": resp.get("message") or resp.get("Message")})
                failed = failed or ("canceled", None)
            else:
                failed = ("error", (status, resp))
                break
        if failed is None:
            self.stats["committed"] += 1
            out = {}
            if req.get("ReturnConsumedCapacity") in ("TOTAL", "INDEXES"):
                out["ConsumedCapacity"] = [{"TableName": t, "CapacityUnits": u,
                                            "WriteCapacityUnits": u}
                                           for t, u in units.items()]
            return out
        for table, key, old in reversed(undo):
            if old:
                send("PutItem", {"TableName": table, "Item": old})
            else:
                send("DeleteItem", {"TableName": table, "Key": key})
        self.stats["canceled"] += 1
        self.stats["last_cancel"] = reasons if failed[0] != "error" else failed[1]
        if failed[0] == "error":
            status, resp = failed[1]
            raise TransactError("InternalServerError",
                                "ddb_transact stand-in: upstream answered %d: %s"
                                % (status, json.dumps(resp)[:300]))
        while len(reasons) < len(req["TransactItems"]):
            reasons.append({"Code": "None"})
        raise TransactError(
            "TransactionCanceledException",
            "Transaction cancelled, please refer cancellation reasons for specific "
            "reasons [%s]" % ", ".join(r["Code"] for r in reasons), reasons)
