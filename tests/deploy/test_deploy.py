"""docs/deploy/: the ECS task definition and the CloudFormation template,
checked against botocore's service models (the maintained request shapes
of RegisterTaskDefinition, CreateTable, CreateEventBus, CreateRole, ...),
against the service itself (its variables, its health check, the table
`cart-service migrate` really creates on dynalite) and against the IAM
policy files. docs/deploy/README.md says what is and is not checked."""

import copy
import json
import os
import re
import subprocess
import sys
import unittest

import botocore.session
from botocore.validate import ParamValidator

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
sys.path.insert(0, os.path.join(ROOT, "tests", "aws"))

import harness  # noqa: E402
sys.path.insert(0, HERE)
import dockerfile  # noqa: E402

DEPLOY = os.path.join(ROOT, "docs", "deploy")
TASK = os.path.join(DEPLOY, "ecs-task-definition.json")
CFN = os.path.join(DEPLOY, "cloudformation.json")
SERVICE = "cart-service"
PSEUDO = {"AWS::Region": "*", "AWS::AccountId": "*", "AWS::Partition": "aws",
          "AWS::StackName": "cart-service", "AWS::URLSuffix": "amazonaws.com"}
CFN_TOP = {"AWSTemplateFormatVersion", "Description", "Parameters", "Conditions",
           "Resources", "Outputs", "Metadata", "Mappings"}
_SESSION = botocore.session.get_session()


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def readme():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        return f.read()


def validate(service, operation, params):
    """botocore's own request validation; '' if valid, else its report."""
    shape = _SESSION.get_service_model(service).operation_model(operation).input_shape
    report = ParamValidator().validate(params, shape)
    return report.generate_report() if report.has_errors() else ""


def dockerfile_healthcheck():
    with open(os.path.join(ROOT, "Dockerfile"), encoding="utf-8") as f:
        final = dockerfile.parse(f.read())[-1]
    (hc,) = [i for i in final["instructions"] if i.keyword == "HEALTHCHECK"]
    return hc.exec_form()


# --- a small CloudFormation evaluator: Ref, Fn::Sub, Fn::GetAtt, Fn::If,
# Fn::Equals, Fn::Not, Fn::Join over parameter values and pseudo parameters.

class Template:
    def __init__(self, doc, params=None):
        self.doc = doc
        self.values = {k: str(v.get("Default")) for k, v in doc.get("Parameters", {}).items()}
        self.values.update(params or {})
        self.values.update(PSEUDO)
        self.conditions = {}

    def condition(self, name):
        if name not in self.conditions:
            self.conditions[name] = self.eval(self.doc["Conditions"][name])
        return self.conditions[name]

    def ref(self, name):
        if name in self.values:
            return self.values[name]
        res = self.doc["Resources"][name]       # KeyError: unknown name
        props = res.get("Properties", {})
        for key in ("TableName", "Name", "LogGroupName", "RoleName"):
            if key in props:
                return self.eval(props[key])
        return "<%s>" % name

    def eval(self, node):
        if isinstance(node, list):
            return [self.eval(n) for n in node]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::Sub":
                return re.sub(r"\$\{([^}]+)\}", lambda m: str(self.ref(m.group(1))), arg)
            if key == "Fn::GetAtt":
                self.doc["Resources"][arg[0]]    # must exist
                return "<%s.%s>" % tuple(arg)
            if key == "Fn::If":
                return self.eval(arg[1] if self.condition(arg[0]) else arg[2])
            if key == "Fn::Equals":
                a, b = self.eval(arg)
                return a == b
            if key == "Fn::Not":
                return not self.eval(arg[0])
            if key == "Fn::Join":
                return arg[0].join(self.eval(arg[1]))
            if key == "Condition":
                return self.condition(arg)
            if key.startswith("Fn::"):
                raise AssertionError("evaluator does not know %s" % key)
        return {k: self.eval(v) for k, v in node.items()}

    def resources(self):
        """{logical id: (type, evaluated properties)} of created resources."""
        out = {}
        for name, res in self.doc["Resources"].items():
            if "Condition" in res and not self.condition(res["Condition"]):
                continue
            out[name] = (res["Type"], self.eval(res.get("Properties", {})))
        return out


class TaskDefinitionTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.task = load(TASK)
        cls.containers = {c["name"]: c for c in cls.task["containerDefinitions"]}
        cls.app = cls.containers[SERVICE]
        cls.env = {e["name"]: e["value"] for e in cls.app.get("environment", [])}

    def test_valid_register_task_definition_input(self):
        self.assertEqual(validate("ecs", "RegisterTaskDefinition", self.task), "")

    def test_validator_refuses_a_broken_copy(self):
        """The model check is real: a wrong type and an unknown member fail."""
        bad = copy.deepcopy(self.task)
        bad["containerDefinitions"][0]["stopTimeout"] = "40"
        bad["containerDefinitions"][0]["healthcheck"] = {}
        report = validate("ecs", "RegisterTaskDefinition", bad)
        self.assertIn("stopTimeout", report)
        self.assertIn("healthcheck", report)

    def test_required_parts(self):
        t = self.task
        for key in ("family", "taskRoleArn", "executionRoleArn", "networkMode",
                    "requiresCompatibilities", "cpu", "memory"):
            self.assertIn(key, t)
        self.assertEqual(t["networkMode"], "awsvpc")
        app = self.app
        for key in ("image", "essential", "portMappings", "environment", "healthCheck",
                    "stopTimeout", "logConfiguration"):
            self.assertIn(key, app)
        self.assertTrue(app["essential"])
        self.assertEqual(app["portMappings"][0]["containerPort"],
                         int(self.env.get("APP_PORT", "8080")))
        self.assertEqual(app["logConfiguration"]["logDriver"], "awslogs")
        opts = app["logConfiguration"]["options"]
        for key in ("awslogs-group", "awslogs-region", "awslogs-stream-prefix"):
            self.assertIn(key, opts)
        self.assertEqual(opts["awslogs-region"], self.env["AWS_REGION"])

    def test_stop_timeout_covers_the_drain(self):
        drain = int(self.env.get("SHUTDOWN_DRAIN_SECONDS", "0"))
        timeout = int(self.env.get("SHUTDOWN_TIMEOUT_SECONDS", "25"))
        stop = self.app["stopTimeout"]
        self.assertGreaterEqual(stop, drain + timeout + 5,
                                "stopTimeout must leave the relay's last pass time")
        self.assertLessEqual(stop, 120)   # Fargate's maximum

    def test_xray_daemon_sidecar(self):
        self.assertEqual(self.env.get("AWS_XRAY_ENABLED"), "true")
        xray = self.containers["xray-daemon"]
        self.assertFalse(xray["essential"])
        self.assertIn({"containerPort": 2000, "protocol": "udp"}, xray["portMappings"])
        # awsvpc: containers share 127.0.0.1, the service's default address
        self.assertNotIn("AWS_XRAY_DAEMON_ADDRESS", self.env)
        self.assertIn({"containerName": "xray-daemon", "condition": "START"},
                      self.app.get("dependsOn", []))

    def test_health_check_matches_dockerfile_and_readme(self):
        cmd = self.app["healthCheck"]["command"]
        self.assertEqual(cmd[0], "CMD")
        self.assertEqual(cmd[1:], dockerfile_healthcheck())
        self.assertTrue(" ".join(cmd[1:]) in readme(), "README does not show %r"
                        % " ".join(cmd[1:]))

    def test_environment_is_documented_and_accepted(self):
        text = readme()
        for name in self.env:
            with self.subTest(var=name):
                self.assertTrue("`%s`" % name in text, "%s is not in README" % name)
                self.assertIn(name, harness.ALL_VARS, "%s is not a variable the service "
                              "reads (tests/e2e/harness.py ALL_VARS)" % name)

    def test_the_service_accepts_these_values(self):
        """The binary parses the environment as it would in the task
        (credentials stand in for the task role): `healthcheck` exits 2 on
        any invalid value, 1 when only the /health answer is missing."""
        env = {k: v for k, v in os.environ.items()
               if k not in harness.ALL_VARS and k not in harness.AWS_CREDENTIAL_VARS}
        env.update(self.env)
        env.update({"APP_PORT": str(harness.free_port()),
                    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/x"})
        p = subprocess.run([harness.binary_path(), "healthcheck"], env=env,
                           capture_output=True, timeout=10, stdin=subprocess.DEVNULL)
        self.assertEqual(p.returncode, 1, p.stderr.decode(errors="replace"))
        self.assertIn(b"/health", p.stderr)


class CloudFormationTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.doc = load(CFN)
        cls.tpl = Template(cls.doc)
        cls.res = cls.tpl.resources()
        cls.task = load(TASK)
        cls.app = [c for c in cls.task["containerDefinitions"] if c["name"] == SERVICE][0]
        cls.env = {e["name"]: e["value"] for e in cls.app["environment"]}

    def test_structure_and_references(self):
        self.assertLessEqual(set(self.doc), CFN_TOP)
        self.assertEqual(self.doc["AWSTemplateFormatVersion"], "2010-09-09")
        known = {"AWS::DynamoDB::Table", "AWS::Events::EventBus", "AWS::Logs::LogGroup",
                 "AWS::IAM::Role"}
        for name, res in self.doc["Resources"].items():
            self.assertIn(res["Type"], known, name)
            self.assertLessEqual(set(res), {"Type", "Properties", "Condition",
                                            "DeletionPolicy", "UpdateReplacePolicy",
                                            "DependsOn"}, name)
        for params in ({}, {"EventBusName": "default"}):
            t = Template(self.doc, params)
            t.resources()                               # every Ref/GetAtt resolves
            t.eval(self.doc["Outputs"])
        for name, p in self.doc["Parameters"].items():
            if "AllowedPattern" in p:
                self.assertRegex(str(p["Default"]), "^(%s)$" % p["AllowedPattern"], name)
            if "AllowedValues" in p:
                self.assertIn(p["Default"], p["AllowedValues"], name)

    def test_table_is_a_valid_create_table_and_ttl(self):
        kind, props = self.res["CartTable"]
        create = {k: v for k, v in props.items() if k != "TimeToLiveSpecification"}
        self.assertEqual(validate("dynamodb", "CreateTable", create), "")
        self.assertEqual(validate("dynamodb", "UpdateTimeToLive", {
            "TableName": props["TableName"],
            "TimeToLiveSpecification": props["TimeToLiveSpecification"]}), "")

    def test_table_is_what_migrate_creates(self):
        """`cart-service migrate` against dynalite behind the SigV4 proxy;
        DescribeTable of its table against the template. TTL: dynalite has no
        UpdateTimeToLive, so the attribute is compared with the migrate
        code's constant."""
        from stack import AwsStack
        _, props = self.res["CartTable"]
        with AwsStack() as st:
            env = {k: v for k, v in os.environ.items() if k not in harness.ALL_VARS}
            env.update(st.env())
            env["DYNAMODB_TABLE"] = "cart-cfn-check"
            p = subprocess.run([harness.binary_path(), "migrate"], env=env,
                               capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
            self.assertEqual(p.returncode, 0, p.stderr + p.stdout)
            client = st.client()
            table = client.describe_table(TableName="cart-cfn-check")["Table"]
            client.close()
        self.assertEqual(sorted(table["KeySchema"], key=str), sorted(props["KeySchema"], key=str))
        self.assertEqual(sorted(table["AttributeDefinitions"], key=str),
                         sorted(props["AttributeDefinitions"], key=str))
        self.assertEqual(table["BillingModeSummary"]["BillingMode"], props["BillingMode"])
        got = {g["IndexName"]: (g["KeySchema"], g["Projection"])
               for g in table.get("GlobalSecondaryIndexes", [])}
        want = {g["IndexName"]: (g["KeySchema"], g["Projection"])
                for g in props["GlobalSecondaryIndexes"]}
        self.assertEqual(got, want)
        with open(os.path.join(ROOT, "adapters", "dynamodb", "dynamo_admin.c")) as f:
            ttl = re.search(r'TimeToLiveSpecification\\":.*?AttributeName\\":\\"(\w+)',
                            f.read(), re.S).group(1)
        self.assertEqual(props["TimeToLiveSpecification"],
                         {"AttributeName": ttl, "Enabled": True})

    def test_bus_log_group_and_roles_are_valid_api_input(self):
        _, bus = self.res["EventBus"]
        self.assertEqual(validate("events", "CreateEventBus", bus), "")
        _, lg = self.res["LogGroup"]
        self.assertEqual(validate("logs", "CreateLogGroup", {"logGroupName": lg["LogGroupName"]}), "")
        self.assertEqual(validate("logs", "PutRetentionPolicy", {
            "logGroupName": lg["LogGroupName"],
            "retentionInDays": int(lg["RetentionInDays"])}), "")
        for name in ("TaskRole", "ExecutionRole"):
            _, role = self.res[name]
            with self.subTest(role=name):
                self.assertEqual(validate("iam", "CreateRole", {
                    "RoleName": role["RoleName"], "Description": role["Description"],
                    "AssumeRolePolicyDocument": json.dumps(role["AssumeRolePolicyDocument"])}), "")
                trust = role["AssumeRolePolicyDocument"]["Statement"][0]
                self.assertEqual(trust["Principal"], {"Service": "ecs-tasks.amazonaws.com"})
                for pol in role.get("Policies", []):
                    self.assertEqual(validate("iam", "PutRolePolicy", {
                        "RoleName": role["RoleName"], "PolicyName": pol["PolicyName"],
                        "PolicyDocument": json.dumps(pol["PolicyDocument"])}), "")
        _, ex = self.res["ExecutionRole"]
        self.assertEqual(ex["ManagedPolicyArns"], [
            "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"])

    def test_task_role_policies_equal_the_iam_files(self):
        """With the policy files' names (table cart-service-carts, the
        default bus, any region and account) the task role's inline
        policies are exactly docs/iam/runtime-policy.json and
        xray-daemon-policy.json."""
        t = Template(self.doc, {"TableName": "cart-service-carts", "EventBusName": "default"})
        res = t.resources()
        self.assertNotIn("EventBus", res)    # `default`: the account's bus
        pols = {p["PolicyName"]: p["PolicyDocument"] for p in res["TaskRole"][1]["Policies"]}
        self.assertEqual(set(pols), {"cart-service-runtime", "xray-daemon"})
        self.assertEqual(pols["cart-service-runtime"],
                         load(os.path.join(ROOT, "docs", "iam", "runtime-policy.json")))
        self.assertEqual(pols["xray-daemon"],
                         load(os.path.join(ROOT, "docs", "iam", "xray-daemon-policy.json")))

    def test_template_and_task_definition_agree(self):
        t = self.tpl
        self.assertEqual(t.values["TableName"], self.env["DYNAMODB_TABLE"])
        self.assertEqual(t.values["EventBusName"], self.env["EVENTBRIDGE_BUS_NAME"])
        self.assertEqual(t.values["LogGroupName"],
                         self.app["logConfiguration"]["options"]["awslogs-group"])
        self.assertTrue(self.task["taskRoleArn"].endswith(
            ":role/" + self.res["TaskRole"][1]["RoleName"]))
        self.assertTrue(self.task["executionRoleArn"].endswith(
            ":role/" + self.res["ExecutionRole"][1]["RoleName"]))


if __name__ == "__main__":
    unittest.main()
