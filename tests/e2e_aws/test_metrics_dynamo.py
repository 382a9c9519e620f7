"""/metrics on the DynamoDB backend: dynamodb_requests_total moves exactly
like the requests the SigV4 proxy saw, and an injected
ConditionalCheckFailedException is counted as such (and as the service's
version-conflict retry)."""

from awsbase import AwsServiceTestCase
from test_metrics import MetricsMixin, value


class DynamoMetricsTest(MetricsMixin, AwsServiceTestCase):
    server_env = {"CIRCUIT_BREAKER_ENABLED": "true"}

    def test_getitem_counted_like_the_proxy(self):
        users = [self.user("m") for _ in range(3)]
        before = self.metrics()
        self.stack.reset()
        for u in users:
            self.get_cart(u)
        self.add_ok(users[0])
        self.get_cart(users[0])
        st = self.stats()
        after = self.metrics()
        sent = self.attempts("GetItem", st)
        self.assertGreater(sent, 0, self.dump())

        def moved(**labels):
            return value(after, "dynamodb_requests_total", **labels) - \
                value(before, "dynamodb_requests_total", **labels)
        self.assertEqual(moved(operation="GetItem", outcome="success"), sent,
                         self.dump())
        self.assertEqual(moved(operation="GetItem"), sent)
        self.assertEqual(
            value(after, "dynamodb_request_duration_seconds_count", operation="GetItem") -
            value(before, "dynamodb_request_duration_seconds_count", operation="GetItem"),
            sent)
        self.assertEqual(value(after, "circuit_breaker_state", dependency="dynamodb"), 0)

    def test_conditional_check_failure_counted(self):
        u = self.user("mc")
        before = self.metrics()
        self.stack.reset()
        self.stack.fault("status", count=1, target="UpdateItem", status=400,
                         type="com.amazonaws.dynamodb.v20120810#"
                              "ConditionalCheckFailedException",
                         message="The conditional request failed")
        r = self.add(u)
        self.assertEqual(r.status, 201, (r, self.dump()))
        st = self.stats()
        after = self.metrics()
        self.assertEqual(st["faults_served"], 1, st)

        def moved(name, **labels):
            return value(after, name, **labels) - value(before, name, **labels)
        self.assertEqual(moved("dynamodb_requests_total", operation="UpdateItem",
                               outcome="conditional_check_failed"), 1, self.dump())
        self.assertEqual(moved("dynamodb_requests_total", operation="UpdateItem"),
                         self.attempts("UpdateItem", st))
        self.assertEqual(moved("cart_version_conflict_retries_total"), 1)
