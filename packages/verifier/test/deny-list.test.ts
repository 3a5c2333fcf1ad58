import t from 'tap'
import { DenyList } from '../src/deny-list.js'

t.test('an entry lives until exp plus the clock tolerance', async (t) => {
  const list = new DenyList(10, 30)
  const now = 1_000_000_000_000
  list.add('fam', now / 1000 + 60, now)
  t.equal(list.has('fam', now), true)
  t.equal(list.has('fam', now + 89_999), true, 'a token may be accepted up to 30 s past its exp')
  t.equal(list.has('fam', now + 90_000), false)
  t.equal(list.size, 0, 'forgotten once useless')
  list.add('old', now / 1000 - 31, now)
  t.equal(list.size, 0, 'an event already past is not stored')
})

t.test('a later exp for the same sid extends it; an earlier one does not shorten it', async (t) => {
  const list = new DenyList(10, 0)
  list.add('fam', 100, 0)
  list.add('fam', 50, 0)
  t.equal(list.has('fam', 99_000), true)
  list.add('fam', 200, 0)
  t.equal(list.has('fam', 150_000), true)
})

t.test('bounded: expired entries go first, then those expiring soonest', async (t) => {
  const list = new DenyList(3, 0)
  list.add('a', 10, 0)
  list.add('b', 1000, 0)
  list.add('c', 2000, 0)
  t.equal(list.add('d', 3000, 20_000), 0, 'the expired one made room')
  t.equal(list.has('a', 20_000), false)
  t.equal(list.add('e', 4000, 20_000), 1, 'full of live entries: one dropped')
  t.equal(list.has('b', 20_000), false, 'the soonest to expire')
  t.equal(list.has('e', 20_000), true)
  t.equal(list.size, 3)
})
