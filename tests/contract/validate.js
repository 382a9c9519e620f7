#!/usr/bin/env node
/*
 * Validates recorded HTTP exchanges against docs/swagger.yaml with Prism's
 * validator (@stoplight/prism-http, the library behind `prism proxy`),
 * offline: no proxy sits between the test and the server, so raw-socket
 * cases (framing, HEAD) are validated like any other exchange.
 *
 *   node validate.js SPEC < exchanges.jsonl > verdicts.jsonl
 *
 * One exchange per input line:
 *   {"id", "method", "path" (with query), "requestHeaders", "requestBody",
 *    "status", "headers", "body" (parsed JSON, a string, or null),
 *    "checkRequest": true | false | null, "component": null | "<name>"}
 *
 * The response is matched to its operation by Prism's router (path and
 * method) and checked for a documented status, the media type, the
 * documented headers (required ones present, each against its schema) and
 * the body against the schema of that media type.  Prism reports an
 * undocumented non-2xx status as a warning: every diagnostic counts here.
 *
 * "component" names a response in components/responses for answers that
 * no path of the document can describe (an unknown path's 404, 414, a
 * request line that is not a request): the exchange is checked against it.
 *
 * checkRequest: true -> the request must be valid against the operation's
 * parameters and request body (a request the server accepted, or refused
 * only for a rule: 422, so the schemas cannot drift stricter than the
 * server); false -> it must be invalid (the server answered 400 for its
 * shape, so they cannot drift looser); null -> not checked.
 *
 * One verdict per line: {"id", "operation", "problems": [strings]}
 * ("operation": the operationId matched, or "component-<name>"), then one
 * last line {"documented": {operationId: [statuses]}} for the caller's
 * coverage check.  Exit 0 unless the spec or the input could not be read.
 */
'use strict';

const fs = require('fs');
const readline = require('readline');
const { getHttpOperationsFromSpec } = require('@stoplight/prism-http');
const route = require('@stoplight/prism-http/dist/router').default;
const { validateInput, validateOutput } = require('@stoplight/prism-http/dist/validator');
const yaml = require('@stoplight/yaml');

const COMPONENT_PATH = '/x-component';

/* Either -> list of diagnostics (empty when valid). */
function diagnostics(either) {
	return either._tag === 'Left' ? either.left : [];
}

function describe(d) {
	const where = d.path && d.path.length ? ' at ' + d.path.join('.') : '';
	return (d.message || JSON.stringify(d)) + where;
}

function splitUrl(path) {
	const q = path.indexOf('?');
	const query = {};
	if (q >= 0) {
		for (const kv of path.slice(q + 1).split('&')) {
			if (!kv) continue;
			const [k, v = ''] = kv.split('=');
			query[decodeURIComponent(k)] = [decodeURIComponent(v)];
		}
	}
	return { path: q >= 0 ? path.slice(0, q) : path, query };
}

/*
 * One synthetic operation per route-less response: the document lists them
 * in x-route-less-responses (component name -> status).
 */
function componentDocument(spec) {
	const paths = {};
	for (const [name, status] of Object.entries(spec['x-route-less-responses'] || {})) {
		paths[COMPONENT_PATH + '/' + name] = {
			get: {
				operationId: 'component-' + name,
				responses: { [status]: { $ref: '#/components/responses/' + name } },
			},
		};
	}
	return { openapi: spec.openapi, info: spec.info, paths, components: spec.components };
}

/*
 * Prism matches media types by type and subtype only, ignoring a "+json"
 * suffix, so application/json would pass for application/problem+json.
 * The exact type (without parameters, which Prism compares) is checked
 * here; and a body where the document gives none is a problem too.
 */
function mediaTypeProblems(ex, contents, head) {
	const ct = ex.headers['content-type'];
	const type = ct ? ct.split(';')[0].trim().toLowerCase() : null;
	const types = contents.map((c) => c.mediaType.split(';')[0].trim().toLowerCase());
	const out = [];

	if (!contents.length) {
		if (!head && ex.body !== null && ex.body !== '')
			out.push('response ' + ex.status + ': a body, but the document gives this response none');
		return out;
	}
	if (!type || !types.includes(type))
		out.push('response ' + ex.status + ': Content-Type ' + JSON.stringify(ct || null) +
			 ' is not one of the documented ' + types.join(', '));
	return out;
}

function check(ex, operations, components, matched) {
	const problems = [];
	const url = splitUrl(ex.path);
	let resource;

	if (ex.component) {
		resource = components.find((o) => o.path === COMPONENT_PATH + '/' + ex.component);
		if (!resource)
			return ['no route-less response component ' + ex.component +
				' (list it in x-route-less-responses)'];
	} else {
		const r = route({
			resources: operations,
			input: { method: ex.method.toLowerCase(), url, headers: ex.requestHeaders, body: ex.requestBody },
		});
		if (r._tag === 'Left')
			return ['no operation for ' + ex.method + ' ' + url.path + ': ' + (r.left.message || r.left.name)];
		resource = r.right;
	}
	matched.operation = resource.iid;

	const head = ex.method.toUpperCase() === 'HEAD';
	const documented = resource.responses.find((r) => String(r.code) === String(ex.status));
	const contents = (documented && documented.contents) || [];
	/* RFC 9110: HEAD is GET's status and headers without the body, so the
	 * body a document gives GET's response is not asked for. */
	const checked = head ? {
		...resource,
		responses: resource.responses.map((r) => ({ ...r, contents: [] })),
	} : resource;

	for (const d of diagnostics(validateOutput({
		resource: checked,
		element: { statusCode: ex.status, headers: ex.headers, body: ex.body === null ? undefined : ex.body },
	})))
		problems.push('response ' + ex.status + ': ' + describe(d));
	if (documented)
		problems.push(...mediaTypeProblems(ex, contents, head));

	if (ex.checkRequest !== null && ex.checkRequest !== undefined && !ex.component) {
		const req = diagnostics(validateInput({
			resource,
			element: {
				method: ex.method.toLowerCase(), url, headers: ex.requestHeaders,
				body: ex.requestBody === null ? undefined : ex.requestBody,
			},
		}));
		if (ex.checkRequest && req.length)
			problems.push(...req.map((d) => 'request should be valid: ' + describe(d)));
		if (!ex.checkRequest && !req.length)
			problems.push('request should be invalid against the spec (the server answered ' +
				      ex.status + ') but the spec accepts it');
	}
	return problems;
}

/*
 * Stoplight's OpenAPI translation turns `format: int64` into the bounds
 * +-(2^53 - 1), the integers a JavaScript number holds exactly.  The service
 * writes exact 64-bit integers (line totals reach 10^18), which is what the
 * document says and warns JavaScript clients about (schema Amount), so the
 * format is dropped here and the document's own minimum/maximum stay.
 * test_contract.py checks such an amount exactly, in Python.
 */
function withoutInt64Format(node) {
	if (Array.isArray(node))
		return node.map(withoutInt64Format);
	if (node === null || typeof node !== 'object')
		return node;
	const out = {};
	for (const [k, v] of Object.entries(node))
		if (!(k === 'format' && v === 'int64'))
			out[k] = withoutInt64Format(v);
	return out;
}

async function main() {
	const specPath = process.argv[2];
	const spec = withoutInt64Format(yaml.parse(fs.readFileSync(specPath, 'utf8')));
	const operations = await getHttpOperationsFromSpec(JSON.parse(JSON.stringify(spec)));
	const components = await getHttpOperationsFromSpec(componentDocument(spec));
	const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });

	for await (const line of rl) {
		if (!line.trim()) continue;
		const ex = JSON.parse(line);
		const matched = { operation: null };
		let problems;
		try {
			problems = check(ex, operations, components, matched);
		} catch (e) {
			problems = ['validator failed: ' + (e && e.stack || e)];
		}
		process.stdout.write(JSON.stringify({ id: ex.id, operation: matched.operation, problems }) + '\n');
	}
	const documented = {};
	for (const op of operations.concat(components))
		documented[op.iid] = op.responses.map((r) => String(r.code));
	process.stdout.write(JSON.stringify({ documented }) + '\n');
}

main().catch((e) => {
	process.stderr.write('validate.js: ' + (e && e.stack || e) + '\n');
	process.exit(2);
});
