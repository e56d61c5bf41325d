// fastinvoke's Node.js runtime: what a nodejs* function's worker starts with `node`.
//
// It loads the handler named by _HANDLER ("file.export", from LAMBDA_TASK_ROOT) and serves
// invocations through the Lambda Runtime API at AWS_LAMBDA_RUNTIME_API, keeping the contract
// of AWS's Node.js runtime interface client (docs/lambda-behaviour.md, "Runtimes"):
// callback handlers, context.done/succeed/fail, async handlers and promises,
// callbackWaitsForEmptyEventLoop, errors as {errorType, errorMessage, trace}, console lines
// carrying the request id.
// Node's own modules only.
'use strict';

const fs = require('fs');
const http = require('http');
const path = require('path');
const util = require('util');
const { Writable } = require('stream');
const { pathToFileURL } = require('url');

const API = process.env.AWS_LAMBDA_RUNTIME_API || '127.0.0.1:9001';
const [API_HOST, API_PORT] = API.split(':');
const API_PATH = '/2018-06-01/runtime';
const ERROR_TYPE_HEADER = 'Lambda-Runtime-Function-Error-Type';
const ERROR_BODY_HEADER = 'Lambda-Runtime-Function-Error-Body';
const agent = new http.Agent({ keepAlive: true }); // its idle sockets keep no loop alive

// -- errors: the runtime's own types and the document Lambda relays ------------------------

class ImportModuleError extends Error {}
class HandlerNotFound extends Error {}
class MalformedHandlerName extends Error {}
class UserCodeSyntaxError extends Error {}
class NodeJsExit extends Error {
  constructor() {
    super(
      'The Lambda runtime client detected an unexpected Node.js exit code. This is most ' +
        'commonly caused by a Promise that was never settled. For more information, see ' +
        'https://nodejs.org/docs/latest/api/process.html#exit-codes',
    );
  }
}
class UnhandledPromiseRejection extends Error {
  constructor(reason, promise) {
    super(reason);
    this.reason = reason;
    this.promise = promise;
  }
}
for (const type of [ImportModuleError, HandlerNotFound, MalformedHandlerName,
  UserCodeSyntaxError, NodeJsExit, UnhandledPromiseRejection]) {
  type.prototype.name = `Runtime.${type.name}`;
}

function looksLikeError(value) {
  return Boolean(value) && typeof value.name === 'string' &&
    typeof value.message === 'string' && typeof value.stack === 'string' &&
    value.name !== '' && value.message !== '' && value.stack !== '';
}

// The error document posted to the Runtime API (Lambda's Node.js shape).
function errorDocument(error) {
  try {
    if (util.types.isNativeError(error) || looksLikeError(error)) {
      return {
        errorType: error.name,
        errorMessage: error.message,
        trace: error.stack.split('\n'),
      };
    }
    return { errorType: typeof error, errorMessage: String(error), trace: [] };
  } catch (_) {
    return {
      errorType: 'handled',
      errorMessage: 'callback called with Error argument, but there was a problem while ' +
        'retrieving one or more of its message, name, and stack',
    };
  }
}

// An error as the log shows it: a tab, then JSON with its own enumerable properties.
function formatted(error) {
  const withProperties = (_key, value) => {
    if (!(value instanceof Error)) return value;
    const shown = Object.assign(
      { errorType: value.name, errorMessage: value.message, code: value.code }, value);
    if (typeof value.stack === 'string') shown.stack = value.stack.split('\n');
    return shown;
  };
  try {
    return '\t' + JSON.stringify(error, withProperties);
  } catch (_) {
    return '\t' + JSON.stringify(errorDocument(error));
  }
}

// -- console: one line per call, `<ISO time>\t<request id>\t<LEVEL>\t<message>`, or in the
// JSON log format `{"timestamp", "level", "requestId", "message"}` ----------------------------

let requestId; // undefined until the first invocation, as Lambda prints it
const LEVELS = { TRACE: 1, DEBUG: 2, INFO: 3, WARN: 4, ERROR: 5, FATAL: 6 };
const JSON_FORMAT = (process.env.AWS_LAMBDA_LOG_FORMAT || '').toUpperCase() === 'JSON';

function errorFields(error) {
  return {
    errorType: error?.constructor?.name ?? 'UnknownError',
    errorMessage: error.message,
    stackTrace: typeof error.stack === 'string' ? error.stack.split('\n') : [],
  };
}

// One argument is the message itself (an object stays an object, an Error becomes its
// errorType, errorMessage and stackTrace); several are formatted into a string, with the
// first Error's fields beside it.
function jsonRecord(level, params) {
  const record = { timestamp: new Date().toISOString(), level, requestId };
  if (params.length === 1) {
    record.message = params[0];
    try {
      return JSON.stringify(record, (_, value) =>
        value instanceof Error ? { ...errorFields(value), ...value } : value);
    } catch (_) {
      record.message = util.format(params[0]);
      return JSON.stringify(record);
    }
  }
  record.message = util.format(...params);
  const error = params.find((param) => param instanceof Error);
  return JSON.stringify(error ? { ...record, ...errorFields(error) } : record);
}

function write(level, ...params) {
  const line = JSON_FORMAT ? jsonRecord(level, params)
    : `${new Date().toISOString()}\t${requestId}\t${level}\t` + util.format(...params);
  process.stdout.write(line.replace(/\n/g, '\r') + '\n'); // one line per record
}

function patchConsole() {
  const lowest = LEVELS[(process.env.AWS_LAMBDA_LOG_LEVEL || '').toUpperCase()] || 1;
  const logger = (level) =>
    LEVELS[level] >= lowest ? (message, ...params) => write(level, message, ...params)
      : () => {};
  console.trace = logger('TRACE');
  console.debug = logger('DEBUG');
  console.info = logger('INFO');
  console.log = console.info;
  console.warn = logger('WARN');
  console.error = logger('ERROR');
  console.fatal = (message, ...params) => write('FATAL', message, ...params);
}

function logError(title, error) {
  const asError = error instanceof Error ? error : new Error(error);
  if (JSON_FORMAT) console.error(asError);
  else console.error(title, formatted(asError));
}

// -- the Runtime API -----------------------------------------------------------------------

function call(method, route, body, headers) {
  return new Promise((resolve) => {
    const request = http.request(
      { host: API_HOST, port: API_PORT, path: API_PATH + route, method, agent, headers },
      (response) => {
        const chunks = [];
        response.on('data', (chunk) => chunks.push(chunk));
        response.on('end', () => resolve({
          status: response.statusCode,
          headers: response.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        }));
      });
    request.on('error', (error) => {
      // Only the worker serves it: without it there is nothing left to run for.
      process.stderr.write(`fastinvoke bootstrap: Runtime API ${API} failed: ${error.message}\n`);
      process.exit(1);
    });
    request.end(body);
  });
}

function post(route, body, headers) {
  return call('POST', route, body, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(body),
    ...headers,
  });
}

function postError(route, error) {
  const document = errorDocument(error);
  const headers = /^[\x20-\x7e]+$/.test(String(document.errorType))
    ? { [ERROR_TYPE_HEADER]: document.errorType } : {};
  return post(route, JSON.stringify(document), headers);
}

async function nextInvocation() {
  const { status, headers, body } = await call('GET', '/invocation/next');
  if (status !== 200) {
    throw new Error(`GET ${API_PATH}/invocation/next answered ${status}: ${body}`);
  }
  return { headers, body };
}

function serialize(result) {
  try {
    return JSON.stringify(result === undefined ? null : result);
  } catch (_) {
    throw new Error('Unable to stringify response body');
  }
}

const postResponse = (result, id) =>
  post(`/invocation/${encodeURIComponent(id)}/response`, serialize(result));
const postInvocationError = (error, id) =>
  postError(`/invocation/${encodeURIComponent(id)}/error`, error);
const postInitError = (error) => postError('/init/error', error);

// -- response streaming: awslambda.streamifyResponse and awslambda.HttpResponseStream ------
//
// A streaming handler is `async (event, responseStream, context)`; what it writes goes to
// the Runtime API as it is written, in the streaming response mode (chunked), and an error
// after the first bytes travels in the trailers.

const STREAMING = Symbol.for('aws.lambda.runtime.handler.streaming');
const HTTP_INTEGRATION = 'application/vnd.awslambda.http-integration-response';

class HttpResponseStream {
  // The prelude a function URL turns into the status and headers, then 8 NUL bytes.
  static from(stream, prelude) {
    stream.setContentType(HTTP_INTEGRATION);
    stream.write(JSON.stringify(prelude));
    stream.write(Buffer.alloc(8));
    return stream;
  }
}

globalThis.awslambda = {
  streamifyResponse(handler) {
    handler[STREAMING] = 'response';
    return handler;
  },
  HttpResponseStream,
};

function responseStream(id) {
  let contentType = 'application/octet-stream';
  let request;
  let answered;
  const open = () => {
    if (!request) {
      request = http.request({
        host: API_HOST, port: API_PORT, method: 'POST', agent,
        path: `${API_PATH}/invocation/${encodeURIComponent(id)}/response`,
        headers: {
          'Content-Type': contentType,
          'Lambda-Runtime-Function-Response-Mode': 'streaming',
          'Transfer-Encoding': 'chunked',
          Trailer: `${ERROR_TYPE_HEADER}, ${ERROR_BODY_HEADER}`,
        },
      });
      request.on('socket', (socket) => socket.setNoDelay(true)); // each write goes now
      answered = new Promise((resolve) => {
        request.on('response', (response) => response.resume().on('end', resolve));
        request.on('error', resolve);
      });
    }
    return request;
  };
  const stream = new Writable({
    write(chunk, encoding, callback) {
      open().write(chunk, encoding, callback);
    },
    final(callback) {
      open().end(callback);
    },
  });
  stream.setContentType = (type) => { contentType = type; };
  stream.fail = (error) => {
    const document = errorDocument(error);
    open().addTrailers({
      [ERROR_TYPE_HEADER]: String(document.errorType),
      [ERROR_BODY_HEADER]: Buffer.from(JSON.stringify(document)).toString('base64'),
    });
    request.end();
  };
  stream.answered = () => (open(), answered);
  return stream;
}

async function handleStreaming(handler, id, event, context, next) {
  const stream = responseStream(id);
  try {
    await handler(event, stream, context);
    if (!stream.writableEnded) stream.end();
  } catch (error) {
    logError('Invoke Error', error);
    stream.fail(error);
  }
  await stream.answered();
  next();
}

// -- loading the handler: "dir/file.a.b" is export a.b of LAMBDA_TASK_ROOT/dir/file -------

function requireIfExists(file) {
  return fs.existsSync(file) ? require(file) : undefined;
}

async function importIfExists(file) {
  return fs.existsSync(file) ? import(pathToFileURL(file).href) : undefined;
}

// Whether the nearest package.json above `folder` says "type": "module".
function typeModule(folder) {
  if (folder.endsWith('/node_modules')) return false;
  const manifest = path.join(folder, 'package.json');
  if (fs.existsSync(manifest)) {
    try {
      return JSON.parse(fs.readFileSync(manifest)).type === 'module';
    } catch (error) {
      console.warn(`${manifest} cannot be read, it will be ignored for ES module detection ` +
        'purposes.', error);
      return false;
    }
  }
  const parent = path.resolve(folder, '..');
  return parent === folder ? false : typeModule(parent);
}

async function loadModule(appRoot, moduleRoot, module) {
  const file = path.resolve(appRoot, moduleRoot, module);
  const extensionless = requireIfExists(file);
  if (extensionless) return extensionless;
  const esm = fs.existsSync(file + '.js') && typeModule(path.dirname(file + '.js'));
  if (!esm) {
    const commonjs = requireIfExists(file + '.js');
    if (commonjs) return commonjs;
  }
  const loaded = (esm && (await importIfExists(file + '.js'))) ||
    (await importIfExists(file + '.mjs')) || requireIfExists(file + '.cjs');
  if (loaded) return loaded;
  return require(require.resolve(module, { paths: [appRoot, moduleRoot] }));
}

async function loadHandler(appRoot, fullHandler) {
  if (fullHandler.includes('..')) {
    throw new MalformedHandlerName(`'${fullHandler}' is not a valid handler name. Use ` +
      'absolute paths when specifying root directories in handler names.');
  }
  const handlerString = path.basename(fullHandler);
  const moduleRoot = fullHandler.substring(0, fullHandler.indexOf(handlerString));
  const match = handlerString.match(/^([^.]*)\.(.*)$/);
  if (!match) throw new MalformedHandlerName('Bad handler');
  const [, module, exportPath] = match;
  let app;
  try {
    app = await loadModule(appRoot, moduleRoot, module);
  } catch (error) {
    if (error instanceof SyntaxError) throw new UserCodeSyntaxError(error);
    if (error.code === 'MODULE_NOT_FOUND') throw new ImportModuleError(error);
    throw error;
  }
  const handler = exportPath.split('.').reduce((value, key) => value && value[key], app);
  if (!handler) throw new HandlerNotFound(`${fullHandler} is undefined or not exported`);
  if (typeof handler !== 'function') throw new HandlerNotFound(`${fullHandler} is not a function`);
  return handler;
}

// -- invocations -----------------------------------------------------------------------------

// What runs when the event loop empties: set per invocation (Node's 'beforeExit').
let onEmptyLoop = () => {};
process.on('beforeExit', () => onEmptyLoop());

// Until the first invocation an uncaught error is an Init error; then it fails the
// invocation in flight.  Either way the process exits afterwards, as Lambda's does.
let onUncaught = (error, status) => postInitError(error).then(() => process.exit(status));
process.on('uncaughtException', (error) => {
  logError('Uncaught Exception', error);
  onUncaught(error, 129);
});
process.on('unhandledRejection', (reason, promise) => {
  const error = new UnhandledPromiseRejection(reason, promise);
  logError('Unhandled Promise Rejection', error);
  onUncaught(error, 128);
});

function parseHeaderJson(text, name) {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new Error(`Cannot parse ${name} as json: ${error.toString()}`);
  }
}

// The callback, and the context's done/succeed/fail; only the first call of any counts.
function completions(id, next) {
  let reported = false;
  let waitForEmptyLoop = true;
  const fail = (error) => {
    logError('Invoke Error', error);
    postInvocationError(error, id).then(next);
  };
  const complete = (result) => {
    if (reported) {
      console.error('Invocation has already been reported as done. Cannot call complete ' +
        'more than once per invocation.');
      return;
    }
    reported = true;
    postResponse(result, id).then(next);
  };
  const callback = (error, result) => {
    onEmptyLoop = () => {};
    if (error !== undefined && error !== null) fail(error);
    else if (!waitForEmptyLoop) complete(result);
    else onEmptyLoop = () => setImmediate(() => complete(result));
  };
  const done = (error, result) => {
    onEmptyLoop = () => {};
    if (error !== undefined && error !== null) fail(error);
    else complete(result);
  };
  let finished = false;
  const first = (fn) => (...args) => {
    if (!finished) {
      fn(...args);
      finished = true; // after: a call that threw leaves room for the error it caused
    }
  };
  const context = {
    get callbackWaitsForEmptyEventLoop() {
      return waitForEmptyLoop;
    },
    set callbackWaitsForEmptyEventLoop(value) {
      waitForEmptyLoop = value;
    },
    done: first(done),
    succeed: first((result) => done(null, result)),
    fail: first((error) => (error === undefined || error === null ? done('handled')
      : done(error, null))),
  };
  return { callback: first(callback), context, markReported: () => { reported = true; } };
}

function invocationContext(id, headers, context) {
  const env = process.env;
  const deadline = Number(headers['lambda-runtime-deadline-ms']);
  return Object.assign(context, {
    functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION,
    functionName: env.AWS_LAMBDA_FUNCTION_NAME,
    memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME,
    clientContext: parseHeaderJson(headers['lambda-runtime-client-context'], 'ClientContext'),
    identity: parseHeaderJson(headers['lambda-runtime-cognito-identity'], 'CognitoIdentity'),
    invokedFunctionArn: headers['lambda-runtime-invoked-function-arn'],
    awsRequestId: id,
    tenantId: headers['lambda-runtime-aws-tenant-id'],
    getRemainingTimeInMillis: () => deadline - Date.now(),
  });
}

async function handleOnce(handler, isAsync, next) {
  const { headers, body } = await nextInvocation();
  const id = headers['lambda-runtime-aws-request-id'];
  requestId = id;
  if (headers['lambda-runtime-trace-id']) {
    process.env._X_AMZN_TRACE_ID = headers['lambda-runtime-trace-id'];
  } else {
    delete process.env._X_AMZN_TRACE_ID;
  }
  const { callback, context, markReported } = completions(id, next);
  try {
    onUncaught = (error, status) => postInvocationError(error, id).then(() => process.exit(status));
    // The loop emptied and nothing reported: an async handler's promise never settled;
    // a plain handler that never called back succeeds with null.
    onEmptyLoop = () => {
      markReported();
      if (isAsync) {
        const error = new NodeJsExit();
        logError('Invoke Error', error);
        postInvocationError(error, id).then(next);
      } else {
        postResponse(null, id).then(next);
      }
    };
    if (handler[STREAMING] === 'response') {
      onEmptyLoop = () => {};
      markReported();
      await handleStreaming(handler, id, JSON.parse(body),
        invocationContext(id, headers, context), next);
      return;
    }
    const result = handler(JSON.parse(body), invocationContext(id, headers, context), callback);
    if (result && typeof result.then === 'function') {
      result.then(context.succeed, context.fail).catch(context.fail);
    }
  } catch (error) {
    callback(error);
  }
}

async function main() {
  patchConsole();
  let handler;
  try {
    handler = await loadHandler(process.env.LAMBDA_TASK_ROOT || process.cwd(),
      process.env._HANDLER || '');
  } catch (error) {
    logError('Uncaught Exception', error);
    await postInitError(error);
    process.exit(129);
  }
  const isAsync = handler.constructor && handler.constructor.name === 'AsyncFunction';
  const next = () => setImmediate(() => handleOnce(handler, isAsync, next).catch((error) => {
    console.log(`Unexpected Top Level Error: ${error.toString()}`);
    onUncaught(error, 129);
  }));
  next();
}

main();
