// Validates Backstage catalog entities with Backstage's own @backstage/catalog-model, running the
// checks the catalog runs when it ingests a location, so the tests can hold Slipway's catalog export
// to them.
//
//   node tests/catalog/validate.mjs FILE
//
// FILE is a JSON document (an array of entities, or an object {"items": [...]}) or a multi-document
// YAML file (documents separated by ---, as a catalog-info.yaml location). For each entity:
//
// - the entity policies the catalog backend's default CatalogBuilder applies, in its order;
// - the built-in kind validators of the catalog's BuiltinKindsEntityProcessor: one of them must
//   accept the entity, or the catalog rejects it ("no processor recognized the entity");
// - each reference that processor turns into a relation must parse with parseEntityRef, with the
//   default kind it uses for that field, and name an entity in the same file (otherwise Backstage
//   shows a dangling relation). Group members are only parsed: they default to kind User, and
//   Slipway exports no Users;
// - no two entities share an entity ref (compared case-insensitively, as the catalog does).
//
// Each problem is one line on stderr, "<kind>:<namespace>/<name>: <message>" (or "item <n>: ..." for an
// item that is not an entity object). On success one line on stdout: "ok: N entities (kinds: ...)".
// Exit status: 0 all valid, 1 any problem, 2 usage or unreadable input.

import { readFileSync } from 'node:fs';
import {
  DefaultNamespaceEntityPolicy,
  EntityPolicies,
  FieldFormatEntityPolicy,
  NoForeignRootFieldsEntityPolicy,
  SchemaValidEntityPolicy,
  apiEntityV1alpha1Validator,
  componentEntityV1alpha1Validator,
  domainEntityV1alpha1Validator,
  groupEntityV1alpha1Validator,
  locationEntityV1alpha1Validator,
  parseEntityRef,
  resourceEntityV1alpha1Validator,
  stringifyEntityRef,
  systemEntityV1alpha1Validator,
  userEntityV1alpha1Validator,
} from '@backstage/catalog-model';
import { parseAllDocuments } from 'yaml';

const policy = EntityPolicies.allOf([
  new SchemaValidEntityPolicy(),
  new DefaultNamespaceEntityPolicy(),
  new NoForeignRootFieldsEntityPolicy(),
  new FieldFormatEntityPolicy(),
]);

const kindValidators = [
  apiEntityV1alpha1Validator,
  componentEntityV1alpha1Validator,
  resourceEntityV1alpha1Validator,
  groupEntityV1alpha1Validator,
  locationEntityV1alpha1Validator,
  userEntityV1alpha1Validator,
  systemEntityV1alpha1Validator,
  domainEntityV1alpha1Validator,
];

// The spec fields BuiltinKindsEntityProcessor emits relations for, per kind, with the default kind it
// parses each with (null: the reference must name its kind) and whether the target must be in the file.
const relationFields = {
  Component: [
    ['owner', 'Group'],
    ['subcomponentOf', 'Component'],
    ['providesApis', 'API'],
    ['consumesApis', 'API'],
    ['dependsOn', null],
    ['system', 'System'],
  ],
  API: [
    ['owner', 'Group'],
    ['system', 'System'],
  ],
  Resource: [
    ['owner', 'Group'],
    ['dependsOn', null],
    ['dependencyOf', null],
    ['system', 'System'],
  ],
  User: [['memberOf', 'Group']],
  Group: [
    ['parent', 'Group'],
    ['children', 'Group'],
    ['members', 'User', { mayBeAbsent: true }],
  ],
  System: [
    ['owner', 'Group'],
    ['domain', 'Domain'],
  ],
  Domain: [
    ['owner', 'Group'],
    ['subdomainOf', 'Domain'],
  ],
};

function fail(message) {
  process.stderr.write(`${message}\n`);
  process.exit(2);
}

function readItems(file) {
  let text;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    fail(`cannot read ${file}: ${e.message}`);
  }
  let json;
  let isJson = false;
  try {
    json = JSON.parse(text);
    isJson = true;
  } catch (e) {
    if (file.endsWith('.json')) fail(`${file} is not valid JSON: ${e.message}`);
  }
  if (isJson) {
    if (Array.isArray(json)) return json;
    if (json && typeof json === 'object' && Array.isArray(json.items)) return json.items;
    fail(`${file}: expected a JSON array of entities or an object {"items": [...]}`);
  }
  // As the catalog's YAML parser does: every document is an entity, empty documents are skipped.
  const items = [];
  for (const [i, doc] of parseAllDocuments(text).entries()) {
    if (doc.errors?.length) fail(`${file}: YAML error in document ${i + 1}: ${doc.errors[0].message.split('\n')[0]}`);
    const value = doc.toJSON();
    if (value !== null) items.push(value);
  }
  return items;
}

function label(entity) {
  const kind = typeof entity.kind === 'string' && entity.kind ? entity.kind : '?';
  const meta = entity.metadata && typeof entity.metadata === 'object' ? entity.metadata : {};
  const namespace = typeof meta.namespace === 'string' && meta.namespace ? meta.namespace : 'default';
  const name = typeof meta.name === 'string' && meta.name ? meta.name : '?';
  return `${kind}:${namespace}/${name}`;
}

// FieldFormatEntityPolicy appends a pointer to Backstage's file-format ADR to every message.
function clean(message) {
  return String(message).replace(/\s*To learn more about catalog file format, visit: \S+$/, '');
}

function isRefName(value) {
  return typeof value === 'string' && value.length > 0;
}

if (process.argv.length !== 3) fail('usage: node tests/catalog/validate.mjs FILE');
const items = readItems(process.argv[2]);

const problems = [];
const entities = [];
for (const [i, item] of items.entries()) {
  if (!item || typeof item !== 'object' || Array.isArray(item)) {
    problems.push(`item ${i + 1}: expected an entity object, got ${Array.isArray(item) ? 'an array' : JSON.stringify(item)}`);
    continue;
  }
  const entry = { entity: item, label: label(item), valid: false };
  entities.push(entry);
  try {
    entry.entity = await policy.enforce(structuredClone(item));
  } catch (e) {
    problems.push(`${entry.label}: ${clean(e.message)}`);
    continue;
  }
  let accepted = false;
  try {
    for (const validator of kindValidators) {
      if (await validator.check(entry.entity)) {
        accepted = true;
        break;
      }
    }
  } catch (e) {
    problems.push(`${entry.label}: ${clean(e.message)}`);
    continue;
  }
  if (!accepted) {
    problems.push(
      `${entry.label}: unknown kind: no built-in kind accepts kind ${JSON.stringify(item.kind)} with apiVersion ${JSON.stringify(item.apiVersion)}`,
    );
    continue;
  }
  entry.valid = true;
}

// Every entity with a kind and a name counts as a relation target, so that one invalid entity is
// reported once rather than again by every entity that refers to it.
const refs = new Set();
for (const entry of entities) {
  const { kind, metadata } = entry.entity;
  if (!isRefName(kind) || !metadata || !isRefName(metadata.name)) continue;
  const ref = stringifyEntityRef({ kind, namespace: isRefName(metadata.namespace) ? metadata.namespace : undefined, name: metadata.name });
  if (refs.has(ref)) {
    problems.push(`${entry.label}: entity ref ${ref} appears more than once in this file; the catalog keeps only one`);
  } else {
    refs.add(ref);
  }
}

for (const entry of entities) {
  if (!entry.valid) continue;
  const { kind, metadata, spec } = entry.entity;
  for (const [field, defaultKind, options] of relationFields[kind] ?? []) {
    const value = spec?.[field];
    if (value === undefined) continue;
    const targets = Array.isArray(value) ? value.map((v, j) => [`spec.${field}[${j}]`, v]) : [[`spec.${field}`, value]];
    for (const [where, target] of targets) {
      let parsed;
      try {
        parsed = parseEntityRef(target, { defaultKind: defaultKind ?? undefined, defaultNamespace: metadata.namespace });
      } catch (e) {
        problems.push(`${entry.label}: ${where}: ${e.message}`);
        continue;
      }
      if (options?.mayBeAbsent) continue;
      const ref = stringifyEntityRef(parsed);
      if (!refs.has(ref)) {
        problems.push(`${entry.label}: ${where}: ${JSON.stringify(target)} refers to ${ref}, which is not in this file (a dangling relation)`);
      }
    }
  }
}

if (problems.length) {
  for (const problem of problems) process.stderr.write(`${problem}\n`);
  process.exit(1);
}
const counts = new Map();
for (const { entity } of entities) counts.set(entity.kind, (counts.get(entity.kind) ?? 0) + 1);
const kinds = [...counts].sort(([a], [b]) => a.localeCompare(b)).map(([k, n]) => `${k} ${n}`).join(', ');
process.stdout.write(`ok: ${entities.length} entities (kinds: ${kinds || 'none'})\n`);
