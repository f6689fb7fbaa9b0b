// The view library in one place: preact + hooks, and htm's tagged templates
// instead of JSX (no build step).
import { h, render, Component, Fragment } from './vendor/preact/preact.module.js';
import { useState, useEffect, useRef, useMemo, useCallback } from './vendor/preact/hooks.module.js';
import htm from './vendor/htm/htm.module.js';

export const html = htm.bind(h);
export { h, render, Component, Fragment, useState, useEffect, useRef, useMemo, useCallback };
