// Builds the Grafana dashboards of wastewatch (dashboards/*.json) from one
// description, so every panel gets the same datasource, the same bilingual
// titles and units, and ids and positions without gaps.
//
//   node dashboards/src/build.mjs           write dashboards/*.json
//   node dashboards/src/build.mjs --check   exit 1 if a JSON file differs
//
// What each dashboard shows and why its queries are written as they are:
// docs/DASHBOARDS.md. Every query is run against a real InfluxDB 1.x and its
// result checked by tests/dashboard_queries_run.rs; the JSON is checked
// against Grafana's published types by tests/dashboard_schema.rs.

import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const OUT = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The provisioned datasource (dashboards/provisioning/datasources). */
const DS = { type: 'influxdb', uid: 'wastewatch-influxdb' };

/** Grafana schema version of the JSON (Grafana 12.4, @grafana/schema 12.4.11). */
const SCHEMA_VERSION = 42;

/** Units: SI symbols stay symbols; words are given in English and Chinese. */
const U = {
  pct: 'percent',
  kg: 'masskg',
  t: 'masst',
  celsius: 'celsius',
  kmh: 'velocitykmh',
  volt: 'volt',
  bytes: 'bytes',
  days: 'suffix: d (天)',
  hours: 'suffix: h (小时)',
  seconds: 'suffix: s (秒)',
  lel: 'suffix: % LEL',
  pctLimit: 'suffix: % of limit (占限值)',
  pctVol: 'suffix: % vol (体积)',
  perSecond: 'suffix: /s (每秒)',
  records: 'suffix: records (条)',
  messages: 'suffix: messages (条)',
  notifications: 'suffix: notifications (条)',
  alerts: 'suffix: alerts (条)',
  events: 'suffix: events (次)',
  tickets: 'suffix: tickets (张)',
  trucks: 'suffix: trucks (辆)',
  bins: 'suffix: bins (个)',
};

const title = (en, zh) => `${en} · ${zh}`;

const target = (refId, query, format = 'time_series', extra = {}) => ({
  datasource: DS,
  refId,
  rawQuery: true,
  resultFormat: format,
  query,
  ...extra,
});

/** Absolute thresholds: [[color, value|null], …]. */
const thresholds = (steps) => ({
  mode: 'absolute',
  steps: steps.map(([color, value]) => ({ color, value })),
});

const GREEN = 'green';
const ORANGE = 'orange';
const RED = 'red';

/** Value mappings of a boolean: true → [text, color], false → [text, color]. */
const boolMappings = (t, f) => [
  { type: 'special', options: { match: 'true', result: { text: t[0], color: t[1], index: 0 } } },
  { type: 'special', options: { match: 'false', result: { text: f[0], color: f[1], index: 1 } } },
];

/** An override of the field named `name`. */
const byName = (name, properties) => ({
  matcher: { id: 'byName', options: name },
  properties: Object.entries(properties).map(([id, value]) => ({ id, value })),
});

const reduce = (fields = '') => ({ values: false, calcs: ['lastNotNull'], fields });

const legend = { displayMode: 'list', placement: 'bottom', showLegend: true, calcs: [] };
const tooltip = { mode: 'multi', sort: 'desc' };

/** One dashboard under construction: panels laid out left to right. */
class Board {
  constructor(uid, en, zh, { time = 'now-6h', refresh = '1m', description, variables = [], tags = [] }) {
    this.d = {
      uid,
      title: title(en, zh),
      description,
      tags: ['wastewatch', ...tags],
      editable: false,
      graphTooltip: 1,
      schemaVersion: SCHEMA_VERSION,
      version: 1,
      time: { from: time, to: 'now' },
      timepicker: {},
      timezone: 'browser',
      refresh,
      fiscalYearStartMonth: 0,
      liveNow: false,
      weekStart: '',
      links: [
        {
          asDropdown: true,
          icon: 'external link',
          includeVars: false,
          keepTime: true,
          tags: ['wastewatch'],
          targetBlank: false,
          title: 'wastewatch dashboards · 看板',
          tooltip: '',
          type: 'dashboards',
          url: '',
        },
      ],
      annotations: { list: [] },
      templating: { list: variables },
      panels: [],
    };
    this.x = 0;
    this.y = 0;
    this.rowH = 0;
  }

  place(w, h) {
    if (this.x + w > 24) {
      this.x = 0;
      this.y += this.rowH;
      this.rowH = 0;
    }
    const pos = { h, w, x: this.x, y: this.y };
    this.x += w;
    this.rowH = Math.max(this.rowH, h);
    return pos;
  }

  /** Starts a new line of panels. */
  br() {
    if (this.x > 0) {
      this.x = 0;
      this.y += this.rowH;
      this.rowH = 0;
    }
    return this;
  }

  add(type, [en, zh], { w = 12, h = 8, description, targets, defaults = {}, overrides = [], options = {}, custom, extra = {} }) {
    const id = this.d.panels.length + 1;
    const fieldDefaults = { ...defaults };
    if (custom) fieldDefaults.custom = custom;
    this.d.panels.push({
      id,
      type,
      title: title(en, zh),
      description,
      datasource: DS,
      gridPos: this.place(w, h),
      fieldConfig: { defaults: fieldDefaults, overrides },
      options,
      targets,
      ...extra,
    });
    return this;
  }

  json() {
    return JSON.stringify(this.d, null, 2) + '\n';
  }
}

// ---------------------------------------------------------------- variables

/** A multi-value tag variable with "All" = any value (`.*`). */
function tagVar(name, label, query, { hide = 0 } = {}) {
  return {
    name,
    label,
    type: 'query',
    datasource: DS,
    query,
    refresh: 1,
    regex: '',
    sort: 1,
    multi: true,
    includeAll: true,
    allValue: '.*',
    current: { selected: true, text: ['All'], value: ['$__all'] },
    options: [],
    hide,
    skipUrlSync: false,
  };
}

const siteVar = (measurement) =>
  tagVar('site', 'Site · 场站', `SHOW TAG VALUES FROM "${measurement}" WITH KEY = "site"`);

// Filters of the variables (a multi-value variable becomes an alternation).
const SITE = `"site" =~ /^($site)$/`;

/** Active alerts: the latest change of every alert id in 90 days, firing or acknowledged. */
function activeAlerts(columns, where = '') {
  const cols = columns.map((c) => `"${c}"`).join(', ');
  return (
    `SELECT ${cols} FROM (SELECT last("alert_id") AS "alert_id", ${cols}, "firing" FROM "alert" ` +
    `WHERE time > now() - 90d${where} GROUP BY "id") WHERE "firing" = true`
  );
}

// ===================================================================== zone

function zone() {
  const trucks =
    `SELECT last("lat") AS "lat", "lon", "loaded", "speed_kmh", "plate", "permit_id" FROM "truck_fix" ` +
    `WHERE $timeFilter AND "gnss_fix" = true AND ${SITE} GROUP BY "device"`;
  const alerting = {
    name: 'alerting_trucks',
    label: 'Trucks with an active alert · 有活动告警的车辆',
    description:
      'Device ids of the entities of the alerts firing or acknowledged now (a truck alert is keyed by the truck id or truck-id/permit-id); hidden, used by the map.',
    type: 'query',
    datasource: DS,
    query: 'SELECT "entity" FROM (SELECT last("alert_id") AS "alert_id", "entity", "firing" FROM "alert" WHERE time > now() - 90d GROUP BY "id") WHERE "firing" = true',
    refresh: 2,
    regex: '/^([^/]+)/',
    sort: 1,
    multi: true,
    includeAll: true,
    current: { selected: true, text: ['All'], value: ['$__all'] },
    options: [],
    hide: 2,
    skipUrlSync: true,
  };
  const b = new Board('wastewatch-zone', 'wastewatch — zone overview', '园区总览', {
    time: 'now-6h',
    refresh: '30s',
    description:
      'Trucks at their last position (loaded or not, marked when an alert of theirs is active), permit routes, corridors and site geofences from the service (GET /api/v1/zone.geojson), and the alerts firing now.',
    variables: [siteVar('truck_fix'), alerting],
  });
  const geo = (layer) => `/wastewatch/api/v1/zone.geojson?layer=${layer}`;
  const style = (color, opacity, lineWidth) => ({
    color: { fixed: color },
    opacity,
    lineWidth,
  });
  const markers = (name, refId, color, size, symbol) => ({
    type: 'markers',
    name,
    config: {
      showLegend: true,
      style: {
        color,
        opacity: 0.9,
        size: { fixed: size, min: 4, max: 20 },
        symbol: { mode: 'fixed', fixed: symbol },
        symbolAlign: { horizontal: 'center', vertical: 'center' },
        text: { mode: 'field', field: 'device', fixed: '' },
        textConfig: { fontSize: 10, offsetX: 0, offsetY: -14, textAlign: 'center', textBaseline: 'middle' },
      },
    },
    location: { mode: 'coords', latitude: 'lat', longitude: 'lon' },
    filterData: { id: 'byRefId', options: refId },
    tooltip: true,
  });
  b.add('geomap', ['Zone map: trucks, permit routes, corridors and sites', '园区地图：车辆、许可路线、走廊与场站'], {
    w: 24,
    h: 16,
    description:
      'Layers: site geofences, route corridors and permit routes fetched by the browser from the GeoJSON endpoint (same-origin path /wastewatch/…, proxied to the service; see docs/DASHBOARDS.md); trucks at their last GNSS fix, orange when loaded, green when empty; red triangles over trucks with an alert firing or acknowledged now.',
    targets: [
      target('A', trucks, 'table'),
      target('B', `${trucks.replace(' GROUP BY "device"', '')} AND "device" =~ /^($alerting_trucks)$/ GROUP BY "device"`, 'table'),
    ],
    defaults: { color: { mode: 'thresholds' }, thresholds: thresholds([[GREEN, null]]) },
    overrides: [
      byName('loaded', {
        mappings: boolMappings(['loaded 重载', ORANGE], ['empty 空载', GREEN]),
        displayName: 'Loaded · 载重',
      }),
      byName('speed_kmh', { unit: U.kmh, displayName: 'Speed · 车速' }),
      byName('plate', { displayName: 'Plate · 车牌' }),
      byName('permit_id', { displayName: 'Permit · 许可证' }),
      byName('device', { displayName: 'Truck · 车辆' }),
    ],
    options: {
      view: { id: 'coords', lat: 34.73, lon: 113.745, zoom: 13, allLayers: true },
      controls: { showZoom: true, mouseWheelZoom: true, showAttribution: true, showScale: true },
      basemap: { type: 'default', name: 'Basemap · 底图', config: {} },
      layers: [
        {
          type: 'geojson',
          name: 'Sites · 场站',
          config: { src: geo('sites'), rules: [], style: style('blue', 0.2, 1) },
          tooltip: true,
        },
        {
          type: 'geojson',
          name: 'Route corridors · 路线走廊',
          config: { src: geo('corridors'), rules: [], style: style('green', 0.15, 1) },
          tooltip: true,
        },
        {
          type: 'geojson',
          name: 'Permit routes · 许可路线',
          config: { src: geo('routes'), rules: [], style: style('dark-green', 0.9, 3) },
          tooltip: true,
        },
        markers('Trucks · 渣土车', 'A', { field: 'loaded', fixed: GREEN }, 8, 'img/icons/marker/circle.svg'),
        markers('Trucks with an active alert · 告警车辆', 'B', { fixed: RED }, 14, 'img/icons/marker/triangle.svg'),
      ],
      tooltip: { mode: 'details' },
    },
  });
  const alertCols = ['severity', 'rule', 'site', 'entity', 'state', 'message', 'value', 'threshold'];
  b.add('table', ['Alerts firing now', '当前告警'], {
    w: 16,
    h: 9,
    description:
      'Every alert whose latest state change (in 90 days) left it firing or acknowledged; time = that change. Acknowledge through POST /api/v1/alerts/{id}/ack.',
    targets: [target('A', activeAlerts(alertCols, ` AND ${SITE}`), 'table')],
    overrides: [
      byName('Time', { displayName: 'Since · 起始', unit: 'dateTimeAsLocal' }),
      byName('severity', {
        displayName: 'Severity · 级别',
        mappings: [
          {
            type: 'value',
            options: {
              critical: { text: 'critical 严重', color: RED, index: 0 },
              major: { text: 'major 重要', color: ORANGE, index: 1 },
              warn: { text: 'warn 警告', color: 'yellow', index: 2 },
              info: { text: 'info 提示', color: 'blue', index: 3 },
            },
          },
        ],
        'custom.cellOptions': { type: 'color-text' },
      }),
      byName('rule', { displayName: 'Rule · 规则' }),
      byName('site', { displayName: 'Site · 场站' }),
      byName('entity', { displayName: 'Entity · 对象' }),
      byName('state', { displayName: 'State · 状态' }),
      byName('message', { displayName: 'Message · 说明' }),
      byName('value', { displayName: 'Value · 数值' }),
      byName('threshold', { displayName: 'Threshold · 阈值' }),
    ],
    options: { showHeader: true, cellHeight: 'sm', frameIndex: 0, sortBy: [{ displayName: 'Severity · 级别', desc: false }] },
  });
  const bySeverity = (sev) =>
    `SELECT count("alert_id") FROM (SELECT last("alert_id") AS "alert_id", "severity", "firing" FROM "alert" WHERE time > now() - 90d AND ${SITE} GROUP BY "id") WHERE "firing" = true AND "severity" = '${sev}'`;
  b.add('stat', ['Alerts firing now by severity', '按级别统计当前告警'], {
    w: 8,
    h: 5,
    targets: [
      target('A', bySeverity('critical'), 'time_series', { alias: 'critical 严重' }),
      target('B', bySeverity('major'), 'time_series', { alias: 'major 重要' }),
      target('C', bySeverity('warn'), 'time_series', { alias: 'warn 警告' }),
      target('D', bySeverity('info'), 'time_series', { alias: 'info 提示' }),
    ],
    defaults: { unit: U.alerts, noValue: '0', color: { mode: 'thresholds' }, thresholds: thresholds([[GREEN, null], [RED, 1]]) },
    options: { reduceOptions: reduce(), colorMode: 'background', graphMode: 'none', textMode: 'value_and_name', justifyMode: 'auto', orientation: 'auto', wideLayout: true, showPercentChange: false, percentChangeColorMode: 'standard' },
  });
  const lastTrucks = `SELECT last("lat") AS "lat", "loaded" FROM "truck_fix" WHERE $timeFilter AND "gnss_fix" = true AND ${SITE} GROUP BY "device"`;
  b.add('stat', ['Trucks reporting and loaded', '在线与重载车辆'], {
    w: 8,
    h: 4,
    targets: [
      target('A', `SELECT count("lat") FROM (${lastTrucks})`, 'time_series', { alias: 'reporting 在线' }),
      target('B', `SELECT count("lat") FROM (${lastTrucks}) WHERE "loaded" = true`, 'time_series', { alias: 'loaded 重载' }),
    ],
    defaults: { unit: U.trucks, noValue: '0', color: { mode: 'fixed', fixedColor: 'blue' } },
    options: { reduceOptions: reduce(), colorMode: 'value', graphMode: 'none', textMode: 'value_and_name', justifyMode: 'auto', orientation: 'auto', wideLayout: true, showPercentChange: false, percentChangeColorMode: 'standard' },
  });
  return b;
}

// ============================================================ hazardous storage

function hazardous() {
  const storage = tagVar('storage', 'Storage point · 贮存点', `SHOW TAG VALUES FROM "storage_reading" WITH KEY = "device" WHERE ${SITE}`);
  const b = new Board('wastewatch-hazardous', 'wastewatch — hazardous-waste storage', '危险废物贮存', {
    time: 'now-24h',
    description:
      'Stock of each storage point against the 3 t limit of a small storage point (GB 18597-2023), the oldest container against the one-year limit (Solid Waste Law art. 81), gas, temperature and medical lots. Thresholds are the defaults of docs/RULES.md.',
    variables: [siteVar('storage_reading'), storage],
  });
  const F = `${SITE} AND "device" =~ /^($storage)$/`;
  const perDevice = { displayName: '${__field.labels.device}' };
  b.add('bargauge', ['Stock as % of the 3 t limit', '贮存量占3吨限值比例'], {
    description: 'Last stock reading ÷ 3 000 kg. Orange from 80 % (2 400 kg, storage_point_over_limit warn), red above 100 % (critical).',
    targets: [target('A', `SELECT last("stock_kg") / 30 AS "pct_of_limit" FROM "storage_reading" WHERE $timeFilter AND ${F} GROUP BY "device"`)],
    defaults: { unit: U.pct, min: 0, max: 120, decimals: 1, ...perDevice, color: { mode: 'thresholds' }, thresholds: thresholds([[GREEN, null], [ORANGE, 80], [RED, 100]]) },
    options: { reduceOptions: reduce(), orientation: 'horizontal', displayMode: 'gradient', showUnfilled: true, valueMode: 'color', namePlacement: 'auto', sizing: 'auto', minVizHeight: 16, minVizWidth: 8, maxVizHeight: 300, legend: { ...legend, showLegend: false } },
  });
  b.add('bargauge', ['Oldest container age vs 365 days', '最久容器贮存天数（限365天）'], {
    description: 'Days since the oldest container in store was filled. Orange from 335 days (storage_age warn), red from 365 days (critical: the one-year limit).',
    targets: [target('A', `SELECT last("oldest_container_age_d") AS "age_d" FROM "storage_reading" WHERE $timeFilter AND ${F} GROUP BY "device"`)],
    defaults: { unit: U.days, min: 0, max: 400, decimals: 0, ...perDevice, color: { mode: 'thresholds' }, thresholds: thresholds([[GREEN, null], [ORANGE, 335], [RED, 365]]) },
    options: { reduceOptions: reduce(), orientation: 'horizontal', displayMode: 'gradient', showUnfilled: true, valueMode: 'color', namePlacement: 'auto', sizing: 'auto', minVizHeight: 16, minVizWidth: 8, maxVizHeight: 300, legend: { ...legend, showLegend: false } },
  });
  const series = (field, agg) =>
    `SELECT ${agg}("${field}") FROM "storage_reading" WHERE $timeFilter AND ${F} GROUP BY time($__interval), "device" fill(none)`;
  const line = (steps) => ({
    drawStyle: 'line',
    lineWidth: 1,
    fillOpacity: 0,
    showPoints: 'auto',
    spanNulls: true,
    thresholdsStyle: { mode: steps ? 'line+area' : 'off' },
  });
  const ts = (en, zh, query, unit, steps, description) =>
    b.add('timeseries', [en, zh], {
      description,
      targets: [target('A', query)],
      defaults: { unit, ...perDevice, color: { mode: 'palette-classic' }, thresholds: thresholds(steps ?? [[GREEN, null]]) },
      custom: line(steps),
      options: { legend, tooltip },
    });
  ts('Stock by storage point', '各贮存点贮存量', series('stock_kg', 'last'), U.kg, [[GREEN, null], [ORANGE, 2400], [RED, 3000]], 'Last reading per interval; the lines are 2 400 kg (warn) and the 3 000 kg limit.');
  b.add('table', ['Storage points now', '贮存点现状'], {
    description: 'The last reading of each storage point in the time range.',
    targets: [
      target(
        'A',
        `SELECT last("stock_kg") AS "stock_kg", "oldest_container_age_d", "container_count", "temperature_c", "leak", "door_open" FROM "storage_reading" WHERE $timeFilter AND ${F} GROUP BY "site", "device"`,
        'table',
      ),
    ],
    overrides: [
      byName('Time', { displayName: 'Reading · 读数时间', unit: 'dateTimeAsLocal' }),
      byName('site', { displayName: 'Site · 场站' }),
      byName('device', { displayName: 'Storage point · 贮存点' }),
      byName('stock_kg', { displayName: 'Stock · 贮存量', unit: U.kg, thresholds: thresholds([[GREEN, null], [ORANGE, 2400], [RED, 3000]]), 'custom.cellOptions': { type: 'color-background' } }),
      byName('oldest_container_age_d', { displayName: 'Oldest container · 最久容器', unit: U.days, decimals: 0, thresholds: thresholds([[GREEN, null], [ORANGE, 335], [RED, 365]]), 'custom.cellOptions': { type: 'color-background' } }),
      byName('container_count', { displayName: 'Containers · 容器数' }),
      byName('temperature_c', { displayName: 'Temperature · 温度', unit: U.celsius }),
      byName('leak', { displayName: 'Leak · 泄漏', mappings: boolMappings(['LEAK 泄漏', RED], ['dry 正常', GREEN]), 'custom.cellOptions': { type: 'color-text' } }),
      byName('door_open', { displayName: 'Door · 门', mappings: boolMappings(['open 开', ORANGE], ['closed 关', GREEN]), 'custom.cellOptions': { type: 'color-text' } }),
    ],
    options: { showHeader: true, cellHeight: 'sm', frameIndex: 0 },
  });
  ts('Combustible gas', '可燃气体浓度', series('combustible_gas_pct_lel', 'max'), U.lel, [[GREEN, null], [ORANGE, 25], [RED, 50]], 'Highest reading per interval, where a sensor is fitted: major from 25 % LEL, critical from 50 % LEL (GB/T 50493-2019).');
  ts('Toxic gas', '有毒气体浓度', series('toxic_gas_pct_of_limit', 'max'), U.pctLimit, [[GREEN, null], [ORANGE, 100], [RED, 200]], 'Highest reading per interval, % of the occupational limit: major from 100 %, critical from 200 %.');
  ts('Oxygen', '氧气浓度', series('oxygen_pct_vol', 'min'), U.pctVol, [[RED, null], [GREEN, 19.5], [RED, 23.5]], 'Lowest reading per interval: outside 19.5–23.5 % vol is major (deficiency or enrichment).');
  ts('Store temperature', '贮存点温度', series('temperature_c', 'max'), U.celsius, [[GREEN, null], [ORANGE, 40], [RED, 50]], 'Highest reading per interval: warn from 40 °C, critical from 50 °C.');
  b.add('bargauge', ['Oldest medical-waste lot vs 48 h', '医疗废物最久批次（限48小时）'], {
    description: 'Medical stores only: hours since the oldest lot in store was sealed. Orange from 36 h (medical_lot_age warn), red from 48 h (the two-day limit).',
    targets: [target('A', `SELECT last("oldest_medical_lot_age_h") AS "lot_age_h" FROM "storage_reading" WHERE $timeFilter AND ${F} GROUP BY "device"`)],
    defaults: { unit: U.hours, min: 0, max: 72, decimals: 1, ...perDevice, color: { mode: 'thresholds' }, thresholds: thresholds([[GREEN, null], [ORANGE, 36], [RED, 48]]) },
    options: { reduceOptions: reduce(), orientation: 'horizontal', displayMode: 'gradient', showUnfilled: true, valueMode: 'color', namePlacement: 'auto', sizing: 'auto', minVizHeight: 16, minVizWidth: 8, maxVizHeight: 300, legend: { ...legend, showLegend: false } },
  });
  return b;
}

// ================================================================ transport

const TRANSPORT_RULES = ['route_deviation', 'outside_time_window', 'trip_not_closed', 'suspected_dumping', 'body_lifted_outside_site', 'cover_open', 'overspeed'];

function transport() {
  const truck = tagVar('truck', 'Truck · 车辆', 'SHOW TAG VALUES FROM "truck_fix" WITH KEY = "device"');
  const b = new Board('wastewatch-transport', 'wastewatch — construction-waste transport', '建筑垃圾运输', {
    time: 'now-24h',
    description:
      'Trips weighed under a permit, corridor deviations, driving outside the permit hours and trips not closed, per permit and truck. The entity of a transport alert is truck-id/permit-id.',
    variables: [truck],
  });
  const ENTITY = `"entity" =~ /^($truck)(\\/|$)/`;
  const trips = (dir) =>
    `SELECT count("net_kg") FROM "weighbridge_ticket" WHERE $timeFilter AND "direction" = '${dir}' AND "permit_id" != '' AND "category" =~ /^construction_/`;
  b.add('stat', ['Trips weighed under a permit', '持证运输过磅趟次'], {
    w: 8,
    h: 6,
    description: 'Construction-waste tickets that name a permit: out at the origin (trips started) and in at a destination (trips delivered).',
    targets: [
      target('A', trips('out'), 'time_series', { alias: 'out (started) 出场' }),
      target('B', trips('in'), 'time_series', { alias: 'in (delivered) 进场' }),
    ],
    defaults: { unit: U.tickets, noValue: '0', color: { mode: 'fixed', fixedColor: 'blue' } },
    options: { reduceOptions: reduce(), colorMode: 'value', graphMode: 'none', textMode: 'value_and_name', justifyMode: 'auto', orientation: 'auto', wideLayout: true, showPercentChange: false, percentChangeColorMode: 'standard' },
  });
  b.add('table', ['Trips per permit and truck', '按许可证和车辆统计趟次'], {
    w: 16,
    h: 6,
    description: 'Tickets naming a permit, grouped by permit, plate and direction: number of tickets and net weight.',
    targets: [
      target(
        'A',
        `SELECT "permit_id", "plate", "direction", "net_kg" FROM "weighbridge_ticket" WHERE $timeFilter AND "permit_id" != '' AND "category" =~ /^construction_/`,
        'table',
      ),
    ],
    extra: {
      transformations: [
        {
          id: 'groupBy',
          options: {
            fields: {
              permit_id: { aggregations: [], operation: 'groupby' },
              plate: { aggregations: [], operation: 'groupby' },
              direction: { aggregations: [], operation: 'groupby' },
              net_kg: { aggregations: ['count', 'sum'], operation: 'aggregate' },
            },
          },
        },
        {
          id: 'organize',
          options: {
            excludeByName: {},
            indexByName: {},
            renameByName: {
              permit_id: 'Permit · 许可证',
              plate: 'Plate · 车牌',
              direction: 'Direction · 方向',
              'net_kg (count)': 'Tickets · 磅单',
              'net_kg (sum)': 'Net kg · 净重（千克）',
            },
          },
        },
      ],
    },
    options: { showHeader: true, cellHeight: 'sm', frameIndex: 0 },
  });
  const episodes = (rule, [en, zh], description) =>
    b.add('table', [en, zh], {
      w: 8,
      h: 8,
      description,
      targets: [target('A', `SELECT "entity", "value" FROM "alert" WHERE $timeFilter AND "rule" = '${rule}' AND "reason" = 'fired' AND ${ENTITY}`, 'table')],
      extra: {
        transformations: [
          {
            id: 'groupBy',
            options: {
              fields: {
                entity: { aggregations: [], operation: 'groupby' },
                value: { aggregations: ['count', 'max'], operation: 'aggregate' },
              },
            },
          },
          {
            id: 'organize',
            options: {
              excludeByName: {},
              indexByName: {},
              renameByName: { entity: 'Truck / permit · 车辆/许可证', 'value (count)': 'Times · 次数', 'value (max)': 'Largest value at raise · 触发时最大值' },
            },
          },
        ],
      },
      options: { showHeader: true, cellHeight: 'sm', frameIndex: 0 },
    });
  episodes('route_deviation', ['Corridor deviations per truck and permit', '偏离路线（按车辆/许可证）'], 'route_deviation alerts raised (fired) in the range; the value is metres from the route centreline less the GPS error.');
  episodes('outside_time_window', ['Out-of-window driving per truck and permit', '超时段行驶（按车辆/许可证）'], 'outside_time_window alerts raised in the range; the value is the speed in km/h.');
  episodes('trip_not_closed', ['Trips not closed per truck and permit', '未闭合趟次（按车辆/许可证）'], 'trip_not_closed alerts raised in the range; the value is minutes since weighing out.');
  const rules = TRANSPORT_RULES.join('|');
  b.add('timeseries', ['Transport alerts raised per hour', '每小时运输类告警'], {
    description: `Alerts raised (fired) per hour by rule: ${TRANSPORT_RULES.join(', ')}.`,
    targets: [target('A', `SELECT count("alert_id") FROM "alert" WHERE $timeFilter AND "reason" = 'fired' AND "rule" =~ /^(${rules})$/ AND ${ENTITY} GROUP BY time(1h), "rule" fill(0)`)],
    defaults: { unit: U.alerts, displayName: '${__field.labels.rule}', color: { mode: 'palette-classic' }, thresholds: thresholds([[GREEN, null]]) },
    custom: { drawStyle: 'bars', fillOpacity: 60, lineWidth: 1, stacking: { mode: 'normal', group: 'A' }, showPoints: 'never' },
    options: { legend, tooltip },
  });
  b.add('table', ['Trucks now', '车辆现状'], {
    description: 'The last fix of each truck in the time range.',
    targets: [
      target(
        'A',
        `SELECT last("speed_kmh") AS "speed_kmh", "loaded", "cover_closed", "body_lifted", "gnss_fix", "plate", "permit_id", "lat", "lon" FROM "truck_fix" WHERE $timeFilter AND "device" =~ /^($truck)$/ GROUP BY "site", "device"`,
        'table',
      ),
    ],
    overrides: [
      byName('Time', { displayName: 'Fix · 定位时间', unit: 'dateTimeAsLocal' }),
      byName('site', { displayName: 'Depot · 车队' }),
      byName('device', { displayName: 'Truck · 车辆' }),
      byName('speed_kmh', { displayName: 'Speed · 车速', unit: U.kmh }),
      byName('loaded', { displayName: 'Loaded · 载重', mappings: boolMappings(['loaded 重载', ORANGE], ['empty 空载', GREEN]) }),
      byName('cover_closed', { displayName: 'Cover · 篷布', mappings: boolMappings(['closed 密闭', GREEN], ['OPEN 未密闭', RED]) }),
      byName('body_lifted', { displayName: 'Body · 车厢', mappings: boolMappings(['LIFTED 举升', RED], ['down 未举升', GREEN]) }),
      byName('gnss_fix', { displayName: 'GNSS · 定位', mappings: boolMappings(['fix 有效', GREEN], ['NO FIX 无效', ORANGE]) }),
      byName('plate', { displayName: 'Plate · 车牌' }),
      byName('permit_id', { displayName: 'Permit · 许可证' }),
    ],
    options: { showHeader: true, cellHeight: 'sm', frameIndex: 0 },
  });
  return b;
}

// ===================================================================== bins

function bins() {
  const b = new Board('wastewatch-bins', 'wastewatch — smart bins', '智能垃圾桶', {
    time: 'now-24h',
    description: 'Fill levels, bins that need collecting (bin_nearly_full and bin_overflowing alerts active now, so medical bins count from 75 %) and bin fires.',
    variables: [siteVar('bin_reading')],
  });
  b.add('bargauge', ['Fill level by bin', '各垃圾桶满溢度'], {
    description: 'Last reading: orange from 80 % (bin_nearly_full), red from 95 % (bin_overflowing).',
    targets: [target('A', `SELECT last("fill_pct") AS "fill_pct" FROM "bin_reading" WHERE $timeFilter AND ${SITE} GROUP BY "device"`)],
    defaults: { unit: U.pct, min: 0, max: 100, decimals: 0, displayName: '${__field.labels.device}', color: { mode: 'thresholds' }, thresholds: thresholds([[GREEN, null], [ORANGE, 80], [RED, 95]]) },
    options: { reduceOptions: reduce(), orientation: 'horizontal', displayMode: 'gradient', showUnfilled: true, valueMode: 'color', namePlacement: 'auto', sizing: 'auto', minVizHeight: 16, minVizWidth: 8, maxVizHeight: 300, legend: { ...legend, showLegend: false } },
  });
  const cols = ['entity', 'rule', 'severity', 'site', 'value'];
  const active = (rules) => activeAlerts(cols, ` AND "rule" =~ /^(${rules})$/ AND ${SITE}`);
  const alertTable = (en, zh, rules, description) =>
    b.add('table', [en, zh], {
      w: 12,
      h: 7,
      description,
      targets: [target('A', active(rules), 'table')],
      overrides: [
        byName('Time', { displayName: 'Since · 起始', unit: 'dateTimeAsLocal' }),
        byName('entity', { displayName: 'Bin · 垃圾桶' }),
        byName('rule', { displayName: 'Rule · 规则' }),
        byName('severity', { displayName: 'Severity · 级别' }),
        byName('site', { displayName: 'Site · 场站' }),
        byName('value', { displayName: 'Value at the change · 变化时数值' }),
      ],
      options: { showHeader: true, cellHeight: 'sm', frameIndex: 0 },
    });
  alertTable('Bins needing collection', '待清运垃圾桶', 'bin_nearly_full|bin_overflowing', 'Bins with a bin_nearly_full or bin_overflowing alert firing or acknowledged now; the value is the fill % at the last change.');
  const count = (rules) =>
    `SELECT count("alert_id") FROM (SELECT last("alert_id") AS "alert_id", "firing" FROM "alert" WHERE time > now() - 90d AND "rule" =~ /^(${rules})$/ AND ${SITE} GROUP BY "id") WHERE "firing" = true`;
  b.add('stat', ['Bins needing collection and bins on fire', '待清运与着火垃圾桶'], {
    w: 12,
    h: 7,
    targets: [
      target('A', count('bin_nearly_full|bin_overflowing'), 'time_series', { alias: 'to collect 待清运' }),
      target('B', count('bin_fire'), 'time_series', { alias: 'on fire 着火' }),
    ],
    defaults: { unit: U.bins, noValue: '0', color: { mode: 'thresholds' }, thresholds: thresholds([[GREEN, null], [ORANGE, 1]]) },
    overrides: [byName('on fire 着火', { thresholds: thresholds([[GREEN, null], [RED, 1]]) })],
    options: { reduceOptions: reduce(), colorMode: 'background', graphMode: 'none', textMode: 'value_and_name', justifyMode: 'auto', orientation: 'auto', wideLayout: true, showPercentChange: false, percentChangeColorMode: 'standard' },
  });
  alertTable('Bin fires now', '当前垃圾桶火情', 'bin_fire', 'bin_fire alerts firing or acknowledged now (≥ 60 °C, a rise of 10 °C in 10 min, or the fire flag).');
  b.add('table', ['Fire flags reported', '火警标志上报次数'], {
    w: 12,
    h: 7,
    description: 'Readings with the device fire flag set, per bin, in the time range.',
    targets: [target('A', `SELECT count("fire_flag") AS "fire_flags" FROM "bin_reading" WHERE $timeFilter AND "fire_flag" = true AND ${SITE} GROUP BY "device"`, 'table')],
    overrides: [byName('device', { displayName: 'Bin · 垃圾桶' }), byName('fire_flags', { displayName: 'Fire flags · 火警次数', unit: U.events })],
    options: { showHeader: true, cellHeight: 'sm', frameIndex: 0 },
  });
  const series = (field, agg) => `SELECT ${agg}("${field}") FROM "bin_reading" WHERE $timeFilter AND ${SITE} GROUP BY time($__interval), "device" fill(none)`;
  b.add('timeseries', ['Bin temperature', '垃圾桶温度'], {
    description: 'Highest reading per interval; the line is 60 °C (bin_fire).',
    targets: [target('A', series('temperature_c', 'max'))],
    defaults: { unit: U.celsius, displayName: '${__field.labels.device}', color: { mode: 'palette-classic' }, thresholds: thresholds([[GREEN, null], [RED, 60]]) },
    custom: { drawStyle: 'line', lineWidth: 1, fillOpacity: 0, showPoints: 'auto', spanNulls: true, thresholdsStyle: { mode: 'line' } },
    options: { legend, tooltip },
  });
  b.add('timeseries', ['Fill level over time', '满溢度变化'], {
    description: 'Last reading per interval; the lines are 80 % and 95 %.',
    targets: [target('A', series('fill_pct', 'last'))],
    defaults: { unit: U.pct, min: 0, max: 100, displayName: '${__field.labels.device}', color: { mode: 'palette-classic' }, thresholds: thresholds([[GREEN, null], [ORANGE, 80], [RED, 95]]) },
    custom: { drawStyle: 'line', lineWidth: 1, fillOpacity: 0, showPoints: 'auto', spanNulls: true, thresholdsStyle: { mode: 'line' } },
    options: { legend, tooltip },
  });
  return b;
}

// =================================================================== alerts

function alerts() {
  const b = new Board('wastewatch-alerts', 'wastewatch — alerts', '告警', {
    time: 'now-7d',
    description:
      'Alerts fired, acknowledged and resolved by site, rule and severity; who acknowledged what, and how long it took (from the firing of an episode to its acknowledgement).',
    variables: [
      siteVar('alert'),
      tagVar('rule', 'Rule · 规则', 'SHOW TAG VALUES FROM "alert" WITH KEY = "rule"'),
      tagVar('severity', 'Severity · 级别', 'SHOW TAG VALUES FROM "alert" WITH KEY = "severity"'),
    ],
  });
  const RULE = `"rule" =~ /^($rule)$/`;
  const F = `${SITE} AND ${RULE} AND "severity" =~ /^($severity)$/`;
  const count = (reason) => `SELECT count("alert_id") FROM "alert" WHERE $timeFilter AND "reason" = '${reason}' AND ${F}`;
  b.add('stat', ['Fired, acknowledged, resolved', '触发、确认、恢复'], {
    w: 8,
    h: 6,
    description: 'Alert state changes in the time range (a re-fire counts again; escalations are not counted).',
    targets: [
      target('A', count('fired'), 'time_series', { alias: 'fired 触发' }),
      target('B', count('acknowledged'), 'time_series', { alias: 'acknowledged 确认' }),
      target('C', count('resolved'), 'time_series', { alias: 'resolved 恢复' }),
    ],
    defaults: { unit: U.events, noValue: '0', color: { mode: 'fixed', fixedColor: 'blue' } },
    options: { reduceOptions: reduce(), colorMode: 'value', graphMode: 'none', textMode: 'value_and_name', justifyMode: 'auto', orientation: 'auto', wideLayout: true, showPercentChange: false, percentChangeColorMode: 'standard' },
  });
  const CHANGES = `"reason" =~ /^(fired|acknowledged|resolved)$/`;
  b.add('table', ['By site, rule and severity', '按场站、规则和级别'], {
    w: 16,
    h: 6,
    description: 'State changes in the range per site, rule, severity and the state they led to (firing = fired).',
    targets: [target('A', `SELECT count("alert_id") AS "changes" FROM "alert" WHERE $timeFilter AND ${CHANGES} AND ${F} GROUP BY "site", "rule", "severity", "state"`, 'table')],
    overrides: [
      byName('site', { displayName: 'Site · 场站' }),
      byName('rule', { displayName: 'Rule · 规则' }),
      byName('severity', { displayName: 'Severity · 级别' }),
      byName('state', { displayName: 'State · 状态' }),
      byName('changes', { displayName: 'Changes · 次数', unit: U.events }),
    ],
    options: { showHeader: true, cellHeight: 'sm', frameIndex: 0 },
  });
  b.add('timeseries', ['Alert state changes', '告警状态变化'], {
    description: 'Fired, acknowledged and resolved per interval.',
    targets: [target('A', `SELECT count("alert_id") FROM "alert" WHERE $timeFilter AND ${CHANGES} AND ${F} GROUP BY time($__interval), "state" fill(none)`)],
    defaults: { unit: U.events, displayName: '${__field.labels.state}', color: { mode: 'palette-classic' }, thresholds: thresholds([[GREEN, null]]) },
    custom: { drawStyle: 'bars', fillOpacity: 60, lineWidth: 1, stacking: { mode: 'normal', group: 'A' }, showPoints: 'never' },
    options: { legend, tooltip },
  });
  b.add('table', ['Active alerts', '活动告警'], {
    description: 'Alerts firing or acknowledged now (their latest change in 90 days).',
    targets: [target('A', activeAlerts(['state', 'severity', 'rule', 'site', 'entity', 'message'], ` AND ${F}`), 'table')],
    overrides: [byName('Time', { displayName: 'Since · 起始', unit: 'dateTimeAsLocal' })],
    options: { showHeader: true, cellHeight: 'sm', frameIndex: 0 },
  });
  b.add('table', ['Acknowledgements', '确认记录'], {
    description: 'Who acknowledged which alert, and when (the name of the API token used).',
    targets: [target('A', `SELECT "rule", "severity", "site", "entity", "acknowledged_by", "message" FROM "alert" WHERE $timeFilter AND "reason" = 'acknowledged' AND ${F}`, 'table')],
    overrides: [byName('Time', { displayName: 'Acknowledged at · 确认时间', unit: 'dateTimeAsLocal' }), byName('acknowledged_by', { displayName: 'By · 确认人' })],
    options: { showHeader: true, cellHeight: 'sm', frameIndex: 0 },
  });
  // Time to acknowledge: the fired (0) and acknowledged (1) points of each
  // alert id in one time-ordered series; an acknowledgement right after a
  // firing (difference 1) is the end of an episode's wait, and its elapsed
  // time is the time to acknowledge. Severity is not filtered: an alert
  // escalated before it was acknowledged has changed severity.
  const FA = `${SITE} AND ${RULE}`;
  const mark = (reason, m) =>
    `(SELECT "alert_id" * 0${m ? ' + 1' : ''} AS "m" FROM "alert" WHERE $timeFilter AND "reason" = '${reason}' AND ${FA} GROUP BY "id", "rule", "site")`;
  const ordered = `SELECT "m" FROM ${mark('fired', false)}, ${mark('acknowledged', true)} GROUP BY "id", "rule", "site"`;
  const waits = `SELECT elapsed("m", 1s) AS "wait_s", difference("m") AS "step" FROM (${ordered}) GROUP BY "id", "rule", "site"`;
  b.add('table', ['Time to acknowledge per alert', '每条告警确认用时'], {
    description: 'Per acknowledgement in the range: seconds from the (re-)firing of the episode to the acknowledgement. An episode fired before the range is not counted. Filtered by site and rule only.',
    targets: [target('A', `SELECT "wait_s" FROM (${waits}) WHERE "step" = 1 GROUP BY "id", "rule", "site"`, 'table')],
    overrides: [
      byName('Time', { displayName: 'Acknowledged at · 确认时间', unit: 'dateTimeAsLocal' }),
      byName('id', { displayName: 'Alert id · 告警编号' }),
      byName('wait_s', { displayName: 'Time to acknowledge · 确认用时', unit: U.seconds }),
    ],
    options: { showHeader: true, cellHeight: 'sm', frameIndex: 0 },
  });
  b.add('table', ['Time to acknowledge by rule', '各规则确认用时'], {
    description: 'Mean and longest time to acknowledge, and acknowledgements, per rule.',
    targets: [target('A', `SELECT mean("wait_s") AS "mean_s", max("wait_s") AS "max_s", count("wait_s") AS "acknowledged" FROM (${waits}) WHERE "step" = 1 GROUP BY "rule"`, 'table')],
    overrides: [
      byName('Time', { 'custom.hidden': true }),
      byName('rule', { displayName: 'Rule · 规则' }),
      byName('mean_s', { displayName: 'Mean · 平均', unit: U.seconds, decimals: 0 }),
      byName('max_s', { displayName: 'Longest · 最长', unit: U.seconds }),
      byName('acknowledged', { displayName: 'Acknowledged · 确认数', unit: U.alerts }),
    ],
    options: { showHeader: true, cellHeight: 'sm', frameIndex: 0 },
  });
  return b;
}

// ===================================================================== KPIs

/** The KPI catalogue (src/kpi/catalogue.rs; the test checks they agree). */
const KPIS = [
  ['construction_utilisation', 'Construction-waste resource utilisation', '建筑垃圾资源化利用率', '%', '>=', 60],
  ['industrial_utilisation', 'General industrial solid-waste utilisation', '一般工业固废综合利用率', '%', '>=', 85],
  ['hazardous_closure', 'Hazardous-waste closure', '危险废物转移闭环率', '%', '>=', 100],
  ['manifest_match_rate', 'Transfer-manifest match rate', '转移联单匹配率', '%', '>=', 100],
  ['medical_clearance_48h', 'Medical waste cleared within 48 h', '医疗废物48小时清运率', '%', '>=', 100],
  ['medical_disposal', 'Medical waste harmless disposal', '医疗废物无害化处置率', '%', '>=', 100],
  ['medical_collection_coverage', 'Medical waste collection coverage', '医疗废物收集覆盖率', '%', '>=', 100],
  ['lab_collection_coverage', 'Laboratory waste collection coverage', '实验室废物收集覆盖率', '%', '>=', 95],
  ['small_business_collection_coverage', 'Small-business hazardous-waste collection coverage', '小微企业危废收集覆盖率', '%', '>=', 95],
  ['route_compliance', 'Construction-waste route compliance', '渣土车路线合规率', '%', '>=', 98],
  ['closed_loop_rate', 'Construction-waste closed-loop trips', '渣土运输闭环率', '%', '>=', 98],
  ['time_window_compliance', 'Construction-waste time-window compliance', '渣土车时段合规率', '%', '>=', 98],
  ['hazardous_stock_turnover', 'Hazardous-waste stock turnover', '危险废物库存周转天数', 'd', '<=', 180],
  ['hazardous_spot_check_pass', 'Hazardous-waste management spot checks passed', '危险废物规范化管理抽查合格率', '%', '>=', 100],
  ['clean_production_audit', 'Key enterprises passing a clean-production audit', '重点企业清洁生产审核通过率', '%', '>=', 100],
  ['green_building_share', 'Green buildings among new buildings', '新建绿色建筑占比', '%', '>=', 100],
  ['prefabricated_share', 'Prefabricated share of new buildings', '装配式建筑占比', '%', '>=', 40],
  ['publicity_reach', 'Publicity reach', '宣传普及率', '%', '>=', 90],
  ['public_participation', 'Public participation', '公众参与率', '%', '>=', 90],
  ['public_satisfaction', 'Public satisfaction', '公众满意度', '%', '>=', 90],
];

function kpis() {
  const period = {
    name: 'period',
    label: 'Period · 周期',
    type: 'custom',
    query: 'month,year',
    current: { selected: true, text: 'month', value: 'month' },
    options: [
      { selected: true, text: 'month', value: 'month' },
      { selected: false, text: 'year', value: 'year' },
    ],
    multi: false,
    includeAll: false,
    hide: 0,
    skipUrlSync: false,
  };
  const b = new Board('wastewatch-kpis', 'wastewatch — zero-waste KPIs', '无废城市指标', {
    time: 'now-1y',
    refresh: '5m',
    description:
      'Every KPI of the catalogue (docs/KPIS.md) for the zone: the latest month (or year) against its 2025 target, and the monthly trend. Thresholds are the catalogue targets; with [kpi.targets] overrides, the table shows the target each value was computed against.',
    variables: [
      period,
      tagVar('kpi', 'KPI · 指标', 'SHOW TAG VALUES FROM "kpi" WITH KEY = "kpi"'),
      tagVar('site', 'Site · 场站', 'SHOW TAG VALUES FROM "kpi" WITH KEY = "site"'),
    ],
  });
  for (const [id, en, zh, unit, op, targetValue] of KPIS) {
    const steps = op === '>=' ? [[RED, null], [GREEN, targetValue]] : [[GREEN, null], [RED, targetValue]];
    b.add('gauge', [en, zh], {
      w: 4,
      h: 6,
      description: `${id}: latest ${'$'}{period} of the zone; target ${op} ${targetValue} ${unit === '%' ? '%' : 'days'} (the gauge turns ${op === '>=' ? 'green at' : 'red above'} it).`,
      targets: [
        target(
          'A',
          `SELECT last("denominator") AS "denominator", "value", "target" FROM "kpi" WHERE $timeFilter AND "kpi" = '${id}' AND "period" = '$period' AND "scope" = 'zone'`,
          'table',
        ),
      ],
      defaults: {
        unit: unit === '%' ? U.pct : U.days,
        min: 0,
        max: unit === '%' ? 100 : 365,
        decimals: 1,
        noValue: 'no data 无数据',
        displayName: `${en} · ${zh}`,
        color: { mode: 'thresholds' },
        thresholds: thresholds(steps),
      },
      options: {
        reduceOptions: reduce('/^value$/'),
        orientation: 'auto',
        showThresholdLabels: false,
        showThresholdMarkers: true,
        sizing: 'auto',
        minVizHeight: 75,
        minVizWidth: 75,
        shape: 'gauge',
        barShape: 'flat',
        barWidthFactor: 0.5,
        effects: {},
        segmentCount: 1,
        segmentSpacing: 0.3,
        textMode: 'auto',
      },
    });
  }
  b.br();
  b.add('table', ['Every KPI against its target', '全部指标与目标'], {
    w: 24,
    h: 12,
    description: 'The latest period of each KPI for the zone, with numerator and denominator; a second formula version or an imported value is a row of its own.',
    targets: [
      target(
        'A',
        `SELECT last("denominator") AS "denominator", "numerator", "value", "target", "target_op", "met", "unit", "numerator_unit", "denominator_unit", "note" FROM "kpi" WHERE $timeFilter AND "period" = '$period' AND "scope" = 'zone' GROUP BY "kpi", "formula_version", "source"`,
        'table',
      ),
    ],
    overrides: [
      byName('Time', { displayName: 'Period start · 周期开始', unit: 'dateTimeAsLocal' }),
      byName('kpi', { displayName: 'KPI · 指标' }),
      byName('value', { displayName: 'Value · 数值', decimals: 2 }),
      byName('target', { displayName: 'Target · 目标' }),
      byName('met', { displayName: 'Met · 达标', mappings: boolMappings(['met 达标', GREEN], ['NOT MET 未达标', RED]), 'custom.cellOptions': { type: 'color-background' } }),
      byName('numerator', { displayName: 'Numerator · 分子' }),
      byName('denominator', { displayName: 'Denominator · 分母' }),
      byName('note', { displayName: 'Note · 说明' }),
    ],
    options: { showHeader: true, cellHeight: 'sm', frameIndex: 0 },
  });
  b.add('timeseries', ['Monthly trend: $kpi', '月度趋势'], {
    w: 8,
    h: 7,
    description: 'The zone value of each month and its target.',
    targets: [target('A', `SELECT "value", "target" FROM "kpi" WHERE $timeFilter AND "kpi" =~ /^($kpi)$/ AND "period" = 'month' AND "scope" = 'zone'`)],
    defaults: { color: { mode: 'palette-classic' }, thresholds: thresholds([[GREEN, null]]) },
    overrides: [
      byName('kpi.value', { displayName: 'value · 数值' }),
      byName('kpi.target', { displayName: 'target · 目标', 'custom.drawStyle': 'line', 'custom.lineStyle': { fill: 'dash', dash: [10, 10] } }),
    ],
    custom: { drawStyle: 'bars', fillOpacity: 70, lineWidth: 1, showPoints: 'never', spanNulls: true },
    options: { legend, tooltip },
    extra: { repeat: 'kpi', repeatDirection: 'h', maxPerRow: 3 },
  });
  b.br();
  b.add('table', ['KPIs per site', '各场站指标'], {
    w: 24,
    h: 10,
    description: 'The latest period of each KPI per site (the site the waste comes from; for transport the permit origin).',
    targets: [
      target(
        'A',
        `SELECT last("denominator") AS "denominator", "numerator", "value", "target", "met" FROM "kpi" WHERE $timeFilter AND "period" = '$period' AND "scope" = 'site' AND ${SITE} GROUP BY "kpi", "site"`,
        'table',
      ),
    ],
    overrides: [
      byName('Time', { displayName: 'Period start · 周期开始', unit: 'dateTimeAsLocal' }),
      byName('met', { displayName: 'Met · 达标', mappings: boolMappings(['met 达标', GREEN], ['NOT MET 未达标', RED]), 'custom.cellOptions': { type: 'color-background' } }),
    ],
    options: { showHeader: true, cellHeight: 'sm', frameIndex: 0 },
  });
  return b;
}

// ========================================================== pipeline health

function pipeline() {
  const b = new Board('wastewatch-pipeline', 'wastewatch — pipeline health', '数据管道健康', {
    time: 'now-6h',
    refresh: '30s',
    description:
      'The service\'s own counters: the wastewatch_pipeline point has one integer field per /metrics name (src/metrics.rs TABLE), written every tsdb.stats_interval_ms.',
    variables: [tagVar('instance', 'Instance · 实例', 'SHOW TAG VALUES FROM "wastewatch_pipeline" WITH KEY = "instance"')],
  });
  const I = `"instance" =~ /^($instance)$/`;
  const rate = (f) => `SELECT non_negative_derivative(last("${f}"), 1s) FROM "wastewatch_pipeline" WHERE $timeFilter AND ${I} GROUP BY time($__interval), "instance" fill(none)`;
  const diff = (f) => `SELECT non_negative_difference(last("${f}")) FROM "wastewatch_pipeline" WHERE $timeFilter AND ${I} GROUP BY time($__interval), "instance" fill(none)`;
  const gauge = (f) => `SELECT last("${f}") FROM "wastewatch_pipeline" WHERE $timeFilter AND ${I} GROUP BY time($__interval), "instance" fill(none)`;
  const ts = (en, zh, targets, unit, description, custom = {}) =>
    b.add('timeseries', [en, zh], {
      description,
      targets: targets.map(([refId, q, alias]) => target(refId, q, 'time_series', { alias })),
      defaults: { unit, color: { mode: 'palette-classic' }, thresholds: thresholds([[GREEN, null]]) },
      custom: { drawStyle: 'line', lineWidth: 1, fillOpacity: 0, showPoints: 'never', spanNulls: true, ...custom },
      options: { legend, tooltip },
    });
  ts('Ingest rate', '接收速率', [
    ['A', rate('ingest_received_total'), 'received 接收 $tag_instance'],
    ['B', rate('ingest_decoded_total'), 'decoded 解码 $tag_instance'],
    ['C', rate('ingest_quarantined_total'), 'quarantined 隔离 $tag_instance'],
  ], U.perSecond, 'Messages per second: ingest_received_total, ingest_decoded_total, ingest_quarantined_total.');
  ts('Durable log depth', '持久日志积压', [['A', gauge('log_depth_records'), 'depth 积压 $tag_instance']], U.records, 'log_depth_records: records not yet consumed by every consumer.');
  ts('Durable log bytes', '持久日志字节', [
    ['A', gauge('log_bytes'), 'unconsumed 未消费 $tag_instance'],
    ['B', gauge('log_max_bytes'), 'bound 上限 $tag_instance'],
    ['C', gauge('quarantine_bytes'), 'quarantine 隔离区 $tag_instance'],
  ], U.bytes, 'log_bytes against log_max_bytes (records + quarantine count in the bound); quarantine_bytes.');
  ts('TSDB lag and rules lag', '写库滞后与规则滞后', [
    ['A', gauge('log_tsdb_lag_records'), 'TSDB 写库 $tag_instance'],
    ['B', gauge('log_rules_lag_records'), 'rules 规则 $tag_instance'],
  ], U.records, 'log_tsdb_lag_records (grows while the TSDB is away) and log_rules_lag_records (moves with each rules snapshot).');
  ts('TSDB writes', '写库速率', [
    ['A', rate('tsdb_points_total'), 'points/s 点每秒 $tag_instance'],
    ['B', diff('tsdb_retryable_errors_total'), 'retryable errors 可重试错误 $tag_instance'],
  ], U.perSecond, 'tsdb_points_total per second; tsdb_retryable_errors_total per interval.');
  ts('Notifier outbox', '通知发件箱', [['A', gauge('notify_outbox'), 'waiting 待发 $tag_instance']], U.notifications, 'notify_outbox: notifications waiting for their receiver.');
  ts('Notifier deliveries and failures', '通知送达与失败', [
    ['A', diff('notify_delivered_total'), 'delivered 送达 $tag_instance'],
    ['B', diff('notify_failures_total'), 'failed attempts 失败 $tag_instance'],
    ['C', diff('notify_dropped_total'), 'dropped 丢弃 $tag_instance'],
  ], U.notifications, 'Per interval: notify_delivered_total, notify_failures_total (retried with backoff), notify_dropped_total.', { drawStyle: 'bars', fillOpacity: 60 });
  ts('Alert events', '告警事件', [
    ['A', diff('alert_events_total'), 'state changes 状态变化 $tag_instance'],
    ['B', diff('notify_queued_total'), 'queued for notification 待通知 $tag_instance'],
  ], U.events, 'Per interval: alert_events_total and notify_queued_total.', { drawStyle: 'bars', fillOpacity: 60 });
  ts('Quarantine', '隔离区', [['A', gauge('quarantine_records'), 'held 隔离 $tag_instance']], U.messages, 'quarantine_records: messages held in quarantine.');
  const last = (f) => `SELECT last("${f}") FROM "wastewatch_pipeline" WHERE $timeFilter AND ${I} GROUP BY "instance"`;
  b.add('stat', ['Connections and stalls now', '连接与阻塞状态'], {
    description: 'Latest values: mqtt_connected, tsdb_up (1 = up), log_full and log_storage_error (1 = ingest not acking).',
    targets: [
      target('A', last('mqtt_connected'), 'time_series', { alias: 'MQTT $tag_instance' }),
      target('B', last('tsdb_up'), 'time_series', { alias: 'TSDB $tag_instance' }),
      target('C', last('log_full'), 'time_series', { alias: 'log full 日志满 $tag_instance' }),
      target('D', last('log_storage_error'), 'time_series', { alias: 'log storage error 日志写错误 $tag_instance' }),
    ],
    defaults: { color: { mode: 'thresholds' }, thresholds: thresholds([[GREEN, null]]) },
    overrides: [
      { matcher: { id: 'byFrameRefID', options: 'A' }, properties: [{ id: 'mappings', value: [{ type: 'value', options: { 1: { text: 'up 正常', color: GREEN, index: 0 }, 0: { text: 'DOWN 断开', color: RED, index: 1 } } }] }] },
      { matcher: { id: 'byFrameRefID', options: 'B' }, properties: [{ id: 'mappings', value: [{ type: 'value', options: { 1: { text: 'up 正常', color: GREEN, index: 0 }, 0: { text: 'DOWN 异常', color: RED, index: 1 } } }] }] },
      { matcher: { id: 'byFrameRefID', options: 'C' }, properties: [{ id: 'mappings', value: [{ type: 'value', options: { 0: { text: 'no 否', color: GREEN, index: 0 }, 1: { text: 'FULL 已满', color: RED, index: 1 } } }] }] },
      { matcher: { id: 'byFrameRefID', options: 'D' }, properties: [{ id: 'mappings', value: [{ type: 'value', options: { 0: { text: 'no 否', color: GREEN, index: 0 }, 1: { text: 'FAILING 失败', color: RED, index: 1 } } }] }] },
    ],
    options: { reduceOptions: reduce(), colorMode: 'background', graphMode: 'none', textMode: 'value_and_name', justifyMode: 'auto', orientation: 'auto', wideLayout: true, showPercentChange: false, percentChangeColorMode: 'standard' },
  });
  return b;
}

// ================================================== weighbridges and devices

function operations() {
  const b = new Board('wastewatch-operations', 'wastewatch — weighbridges and devices', '地磅与设备', {
    time: 'now-24h',
    description: 'Tonnage weighed by category and destination, device status and clocks.',
    variables: [siteVar('weighbridge_ticket')],
  });
  b.add('timeseries', ['Net tonnes weighed in per hour by category', '每小时各类别进场净重'], {
    description: 'Sum of net_kg of tickets in, per hour and category, in tonnes.',
    targets: [target('A', `SELECT sum("net_kg") / 1000 FROM "weighbridge_ticket" WHERE $timeFilter AND "direction" = 'in' AND ${SITE} GROUP BY time(1h), "category" fill(0)`)],
    defaults: { unit: U.t, displayName: '${__field.labels.category}', color: { mode: 'palette-classic' }, thresholds: thresholds([[GREEN, null]]) },
    custom: { drawStyle: 'bars', fillOpacity: 60, lineWidth: 1, stacking: { mode: 'normal', group: 'A' }, showPoints: 'never' },
    options: { legend, tooltip },
  });
  b.add('table', ['Net tonnes in by category and destination', '按类别和去向统计进场净重'], {
    description: 'Tickets in over the time range, per waste category and destination type.',
    targets: [target('A', `SELECT sum("net_kg") / 1000 AS "net_t", count("net_kg") AS "tickets" FROM "weighbridge_ticket" WHERE $timeFilter AND "direction" = 'in' AND ${SITE} GROUP BY "category", "destination_type"`, 'table')],
    overrides: [
      byName('Time', { 'custom.hidden': true }),
      byName('category', { displayName: 'Category · 类别' }),
      byName('destination_type', { displayName: 'Destination · 去向' }),
      byName('net_t', { displayName: 'Net · 净重', unit: U.t, decimals: 3 }),
      byName('tickets', { displayName: 'Tickets · 磅单', unit: U.tickets }),
    ],
    options: { showHeader: true, cellHeight: 'sm', frameIndex: 0 },
  });
  b.add('table', ['Devices: last status message', '设备最近状态'], {
    description: 'The last birth, heartbeat or last will of each device in the range.',
    targets: [target('A', `SELECT last("uptime_s") AS "uptime_s", "status", "device_kind", "firmware", "battery_v" FROM "device_status" WHERE $timeFilter AND ${SITE} GROUP BY "site", "device"`, 'table')],
    overrides: [
      byName('Time', { displayName: 'At · 时间', unit: 'dateTimeAsLocal' }),
      byName('uptime_s', { displayName: 'Uptime · 运行时长', unit: 's' }),
      byName('status', { displayName: 'Status · 状态', mappings: [{ type: 'value', options: { last_will: { text: 'offline 离线', color: RED, index: 0 }, birth: { text: 'birth 上线', color: GREEN, index: 1 }, heartbeat: { text: 'heartbeat 心跳', color: GREEN, index: 2 } } }], 'custom.cellOptions': { type: 'color-text' } }),
      byName('battery_v', { displayName: 'Battery · 电池', unit: U.volt }),
    ],
    options: { showHeader: true, cellHeight: 'sm', frameIndex: 0 },
  });
  b.add('timeseries', ['Device clocks re-stamped', '设备时钟重置'], {
    description: 'Points written with the receive time because the device clock was off (clock_restamped), per hour and measurement.',
    targets: [target('A', `SELECT count("seq") FROM "bin_reading", "storage_reading", "truck_fix", "weighbridge_ticket" WHERE $timeFilter AND "clock_restamped" = true AND ${SITE} GROUP BY time(1h) fill(none)`)],
    defaults: { unit: U.events, color: { mode: 'palette-classic' }, thresholds: thresholds([[GREEN, null]]) },
    custom: { drawStyle: 'bars', fillOpacity: 60, lineWidth: 1, showPoints: 'never' },
    options: { legend, tooltip },
  });
  return b;
}

const BOARDS = {
  'zone-overview.json': zone,
  'hazardous-storage.json': hazardous,
  'transport.json': transport,
  'bins.json': bins,
  'alerts.json': alerts,
  'kpis.json': kpis,
  'pipeline-health.json': pipeline,
  'operations.json': operations,
};

const check = process.argv.includes('--check');
let stale = 0;
for (const [file, make] of Object.entries(BOARDS)) {
  const path = join(OUT, file);
  const text = make().json();
  if (check) {
    let old = '';
    try {
      old = readFileSync(path, 'utf8');
    } catch {
      old = '';
    }
    if (old !== text) {
      console.error(`${file} is not what dashboards/src/build.mjs makes: run node dashboards/src/build.mjs`);
      stale += 1;
    }
  } else {
    writeFileSync(path, text);
  }
}
process.exit(stale ? 1 : 0);
