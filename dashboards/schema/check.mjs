// Checks Grafana dashboard JSON against Grafana's own published types: the
// dashboard model of @grafana/schema (Dashboard, VariableModel, Panel,
// FieldConfig, thresholds, value mappings …) and the option types of every
// panel plugin used (geomap, gauge, stat, bargauge, table, timeseries). Each
// dashboard becomes a TypeScript file that assigns its JSON, as object
// literals, to those types; the TypeScript compiler then reports every
// unknown property, missing required property and value outside its enum.
// Where the package types a part as `unknown` (geomap layer configs,
// transformations, override properties, InfluxQL targets) this file gives
// the shape Grafana reads (from Grafana's geomap style/types.ts and the
// InfluxDB datasource's query model), so those parts are checked too.
//
//   node dashboards/schema/check.mjs [DIR]     DIR: dashboards/ by default
//
// Needs the pinned packages of dashboards/schema/package.json, installed by
// dashboards/schema/install.sh into target/dashboard-schema (scripts/test.sh
// runs it); WW_DASHBOARD_SCHEMA_DIR points elsewhere. Exit 0 when every file
// passes, 1 with the compiler's messages otherwise, 2 when the tools are
// missing. WW_DASHBOARD_SCHEMA_KEEP=1 keeps the generated TypeScript (in
// target/dashboard-schema/gen/<pid>) for reading.

import { createRequire } from 'node:module';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve, basename } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '..', '..');
const TOOLS = process.env.WW_DASHBOARD_SCHEMA_DIR || join(REPO, 'target', 'dashboard-schema');
const DIR = resolve(process.argv[2] || join(REPO, 'dashboards'));

const pins = JSON.parse(readFileSync(join(HERE, 'package.json'), 'utf8')).devDependencies;
const require = createRequire(join(TOOLS, 'package.json'));
let ts;
try {
  ts = require('typescript');
  for (const [name, version] of Object.entries(pins)) {
    const got = require(`${name}/package.json`).version;
    if (got !== version) throw new Error(`${name} ${got} installed, ${version} pinned`);
  }
} catch (e) {
  console.error(`dashboard schema tools missing in ${TOOLS} (${e.message}): run dashboards/schema/install.sh (scripts/test.sh does)`);
  process.exit(2);
}

const PANEL_TYPES = {
  geomap: ['GeomapPanelCfg', 'geomap', 'HideableFieldConfig'],
  gauge: ['GaugePanelCfg', 'gauge', null],
  stat: ['StatPanelCfg', 'stat', null],
  bargauge: ['BarGaugePanelCfg', 'bargauge', null],
  table: ['TablePanelCfg', 'table', 'table'],
  timeseries: ['TimeSeriesPanelCfg', 'timeseries', 'timeseries'],
};

const prelude = `
import type * as S from '@grafana/schema';
${Object.entries(PANEL_TYPES)
  .map(([t, [cfg, dir]]) => `import type * as P_${t} from '@grafana/schema/dist/esm/raw/composable/${dir}/panelcfg/x/${cfg}_types.gen';`)
  .join('\n')}

// JSON has no enums: an enum-typed property takes the enum's values as
// literals (string enums become the union of their strings).
type J<T> = 0 extends 1 & T
  ? T
  : T extends string
    ? \`\${T}\`
    : T extends number | boolean | null | undefined
      ? T
      : T extends ReadonlyArray<infer U>
        ? Array<J<U>>
        : T extends object
          ? { [K in keyof T]: J<T[K]> }
          : T;

type Ds = { type: 'influxdb'; uid: string };

// A raw InfluxQL query of the InfluxDB datasource (InfluxQL mode).
type Target = {
  datasource: Ds;
  refId: string;
  rawQuery: true;
  resultFormat: 'time_series' | 'table' | 'logs';
  query: string;
  alias?: string;
  hide?: boolean;
};

type Matcher =
  | { id: 'byName' | 'byRegexp' | 'byFrameRefID' | 'byType'; options: string };

type Property =
  | { id: 'unit' | 'displayName' | 'noValue'; value: string }
  | { id: 'decimals' | 'min' | 'max'; value: number }
  | { id: 'mappings'; value: Array<J<S.ValueMapping>> }
  | { id: 'thresholds'; value: J<S.ThresholdsConfig> }
  | { id: 'color'; value: J<S.FieldColor> }
  | { id: 'custom.hidden'; value: boolean }
  | { id: 'custom.cellOptions'; value: J<S.TableCellOptions> }
  | { id: 'custom.drawStyle'; value: J<S.GraphDrawStyle> }
  | { id: 'custom.lineStyle'; value: J<S.LineStyle> };

type Override = { matcher: Matcher; properties: Property[] };

type Reducer = 'count' | 'sum' | 'max' | 'min' | 'mean' | 'last' | 'lastNotNull' | 'first' | 'firstNotNull';
type Transformation =
  | { id: 'groupBy'; options: { fields: Record<string, { aggregations: Reducer[]; operation: 'groupby' | 'aggregate' }> } }
  | { id: 'organize'; options: { excludeByName: Record<string, boolean>; indexByName: Record<string, number>; renameByName: Record<string, string> } };

type PanelOf<O, C> = Omit<J<S.Panel>, 'options' | 'fieldConfig' | 'targets' | 'transformations' | 'datasource'> & {
  datasource: Ds;
  options: J<O>;
  fieldConfig: { defaults: Omit<J<S.FieldConfig>, 'custom'> & { custom?: J<C> }; overrides: Override[] };
  targets: Target[];
  transformations?: Transformation[];
};

// Geomap layer configs, as Grafana's geomap panel reads them
// (public/app/plugins/panel/geomap/style/types.ts, layers/data/*).
type StyleConfig = {
  color?: J<S.ColorDimensionConfig>;
  opacity?: number;
  lineWidth?: number;
  size?: J<S.ScaleDimensionConfig>;
  symbol?: J<S.ResourceDimensionConfig>;
  symbolAlign?: { horizontal?: 'left' | 'center' | 'right'; vertical?: 'top' | 'center' | 'bottom' };
  text?: J<S.TextDimensionConfig>;
  textConfig?: { fontSize?: number; offsetX?: number; offsetY?: number; textAlign?: 'left' | 'center' | 'right'; textBaseline?: 'top' | 'middle' | 'bottom' };
  rotation?: J<S.ScalarDimensionConfig>;
};
type LayerBase = Omit<J<S.MapLayerOptions>, 'type' | 'config' | 'filterData'>;
type Layer =
  | (LayerBase & { type: 'default' | 'osm-standard' | 'carto'; config: {} })
  | (LayerBase & {
      type: 'geojson';
      config: {
        src: string;
        rules: Array<{ style?: StyleConfig; check?: { property: string; operation: J<S.ComparisonOperation>; value: string | number | boolean } }>;
        style: StyleConfig;
      };
    })
  | (LayerBase & { type: 'markers'; config: { style: StyleConfig; showLegend?: boolean }; filterData?: { id: 'byRefId'; options: string } });

type Board = Omit<J<S.Dashboard>, 'panels'> & { panels: [] };
`;

const CUSTOM = {
  HideableFieldConfig: 'S.HideableFieldConfig',
  table: 'P_table.FieldConfig',
  timeseries: 'P_timeseries.FieldConfig',
};

function generate(file, d) {
  const lines = [prelude];
  const tag = (s) => `// ${basename(file)}: ${String(s).replace(/\n/g, ' ')}`;
  const { panels = [], ...rest } = d;
  lines.push(tag('dashboard'), `const board: Board = ${JSON.stringify({ ...rest, panels: [] }, null, 1)};`);
  const ids = new Set();
  panels.forEach((p, i) => {
    const kind = PANEL_TYPES[p.type];
    lines.push(tag(`panel ${p.id} "${p.title}" (${p.type})`));
    if (!kind) {
      lines.push(`const unknownPanelType${i}: 'a panel type this check knows' = ${JSON.stringify(p.type)};`);
      return;
    }
    if (ids.has(p.id)) lines.push(`const duplicatePanelId${i}: 'unique panel ids' = 'panel id ${p.id} twice';`);
    ids.add(p.id);
    const custom = kind[2] ? CUSTOM[kind[2]] : 'Record<string, never>';
    lines.push(`const panel${i}: PanelOf<P_${p.type}.Options, ${custom}> = ${JSON.stringify(p, null, 1)};`);
    if (p.type === 'geomap') {
      const all = [p.options?.basemap, ...(p.options?.layers ?? [])];
      all.forEach((l, j) => {
        lines.push(tag(`panel ${p.id} layer ${j}`), `const layer${i}_${j}: Layer = ${JSON.stringify(l, null, 1)};`);
      });
    }
  });
  return lines.join('\n') + '\nexport {};\n';
}

const files = readdirSync(DIR)
  .filter((f) => f.endsWith('.json'))
  .sort();
if (files.length === 0) {
  console.error(`no dashboard JSON in ${DIR}`);
  process.exit(1);
}
// One directory per run: checks may run side by side (the tests do).
const gen = join(TOOLS, 'gen', String(process.pid));
rmSync(gen, { recursive: true, force: true });
mkdirSync(gen, { recursive: true });
const sources = [];
for (const f of files) {
  let d;
  try {
    d = JSON.parse(readFileSync(join(DIR, f), 'utf8'));
  } catch (e) {
    console.error(`${f}: not JSON: ${e.message}`);
    process.exit(1);
  }
  const out = join(gen, f.replace(/\.json$/, '.ts'));
  writeFileSync(out, generate(f, d));
  sources.push(out);
}

const program = ts.createProgram(sources, {
  strict: true,
  noEmit: true,
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.ESNext,
  moduleResolution: ts.ModuleResolutionKind.Bundler,
  skipLibCheck: true,
  noUnusedLocals: false,
  types: [],
});
const diags = ts.getPreEmitDiagnostics(program);
const keep = process.env.WW_DASHBOARD_SCHEMA_KEEP === '1';
for (const dg of diags) {
  const msg = ts.flattenDiagnosticMessageText(dg.messageText, '\n  ');
  if (dg.file) {
    const { line } = dg.file.getLineAndCharacterOfPosition(dg.start ?? 0);
    const text = dg.file.getFullText().split('\n');
    let where = '';
    for (let k = line; k >= 0; k--) {
      if (text[k].startsWith('// ')) {
        where = text[k].slice(3);
        break;
      }
    }
    console.error(`${where}\n  ${basename(dg.file.fileName)}:${line + 1}: ${msg}\n  > ${text[line].trim()}`);
  } else {
    console.error(msg);
  }
}
if (!keep) rmSync(gen, { recursive: true, force: true });
if (diags.length > 0) {
  console.error(`${diags.length} schema error(s) in ${files.length} dashboard(s)`);
  process.exit(1);
}
console.log(`${files.length} dashboards match the Grafana ${pins['@grafana/schema']} schema (@grafana/schema ${pins['@grafana/schema']}, typescript ${pins.typescript})`);
