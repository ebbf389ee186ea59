import t from 'tap'
import { BACKOFF, SLOW_BACKOFF, backoffDelay, decideClose, decideStatus } from '../../lib/client/index.js'
import { CloseCode } from '../../lib/constants.js'

t.test('every close code gets the decision README\'s close-code table gives', async (t) => {
  const table: Array<[number, string]> = [
    [1000, 'retry'], [1001, 'retry'], [1002, 'retry'], [1005, 'retry'], [1006, 'retry'], [1007, 'retry'], [1008, 'retry'],
    [1009, 'retry'], [1011, 'retry'], [4000, 'retry'], [4001, 'retry'], [4003, 'retry'], [4004, 'retry'],
    [4005, 'token'], [4006, 'slow'], [4007, 'retry'], [4499, 'retry'],
    [4500, 'stop'], [4501, 'stop'], [4502, 'stop'], [4503, 'stop'], [4600, 'stop'], [4999, 'stop'], [5000, 'retry']
  ]
  for (const [code, decision] of table) t.equal(decideClose(code), decision, String(code))
})

t.test('the server\'s close codes are all in the table, each with its range\'s decision', async (t) => {
  const expected: Record<number, string> = {
    [CloseCode.GOING_AWAY]: 'retry',
    [CloseCode.PROTOCOL_ERROR]: 'retry',
    [CloseCode.ABNORMAL_CLOSURE]: 'retry',
    [CloseCode.INVALID_PAYLOAD]: 'retry',
    [CloseCode.POLICY_VIOLATION]: 'retry',
    [CloseCode.MESSAGE_TOO_BIG]: 'retry',
    [CloseCode.SLOW_CONSUMER]: 'retry',
    [CloseCode.RESYNC_NEEDED]: 'retry',
    [CloseCode.TOKEN_EXPIRED]: 'token',
    [CloseCode.RATE_LIMITED]: 'slow',
    [CloseCode.REPLACED]: 'stop',
    [CloseCode.TOKEN_REVOKED]: 'stop',
    [CloseCode.FORCED_LOGOUT]: 'stop',
    [CloseCode.PROTOCOL_VIOLATION]: 'stop'
  }
  t.strictSame(Object.values(CloseCode).sort(), Object.keys(expected).map(Number).sort(), 'a new server close code needs a line here')
  for (const code of Object.values(CloseCode)) t.equal(decideClose(code), expected[code], String(code))
})

t.test('the status of the GET after a refused connect decides the same way', async (t) => {
  const table: Array<[number, string]> = [
    [400, 'stop'], [401, 'token'], [403, 'stop'], [404, 'retry'], [426, 'retry'], [429, 'slow'], [500, 'retry'], [502, 'retry'], [503, 'retry']
  ]
  for (const [status, decision] of table) t.equal(decideStatus(status), decision, String(status))
  for (const [status, decision] of table) {
    t.equal(decideStatus(status, true), status === 400 ? 'reset' : decision, `${status} to a connect with recover`)
  }
})

t.test('backoff: full jitter between min and min·2^attempt, capped at max, never below min', async (t) => {
  const delays = (random: number, backoff = BACKOFF): number[] => [0, 1, 2, 3, 4, 5, 6, 7, 8].map((attempt) => backoffDelay(attempt, backoff, () => random))
  t.strictSame(delays(0), [500, 500, 500, 500, 500, 500, 500, 500, 500], 'the floor is min')
  t.strictSame(delays(0.5), [750, 1000, 1500, 2500, 4500, 8500, 10500, 10500, 10500])
  t.strictSame(delays(0.999999), [1000, 1500, 2500, 4500, 8500, 16500, 20000, 20000, 20000], 'the cap is max')
  t.strictSame(delays(0.5, SLOW_BACKOFF), [7500, 10000, 15000, 25000, 35000, 35000, 35000, 35000, 35000], 'after 4006: 5 s → 60 s')
  t.equal(backoffDelay(10_000, BACKOFF, () => 1), 20_000, 'a huge attempt count neither overflows nor passes the cap')
  t.equal(backoffDelay(0, { minMs: 10, maxMs: 15 }, () => 0.9), 15)
})
