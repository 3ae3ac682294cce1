import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SqlState, isSqlStateShape, sqlStateClass, sqlStateName } from './sqlstate.js';

void test('every constant is a well-formed, unique SQLSTATE', () => {
  const codes = Object.values(SqlState);
  assert.ok(codes.every(isSqlStateShape));
  assert.equal(new Set(codes).size, codes.length);
});

void test('the codes a proxy needs are present with PostgreSQL values', () => {
  assert.equal(SqlState.PROTOCOL_VIOLATION, '08P01');
  assert.equal(SqlState.INVALID_PASSWORD, '28P01');
  assert.equal(SqlState.INVALID_CATALOG_NAME, '3D000');
  assert.equal(SqlState.TOO_MANY_CONNECTIONS, '53300');
  assert.equal(SqlState.ADMIN_SHUTDOWN, '57P01');
  assert.equal(SqlState.QUERY_CANCELED, '57014');
  assert.equal(SqlState.IN_FAILED_SQL_TRANSACTION, '25P02');
});

void test('name lookup, shape and class', () => {
  assert.equal(sqlStateName('08P01'), 'PROTOCOL_VIOLATION');
  assert.equal(sqlStateName('99999'), undefined);
  assert.equal(isSqlStateShape('08p01'), false);
  assert.equal(isSqlStateShape('08P0'), false);
  assert.equal(sqlStateClass('28P01'), '28');
});
