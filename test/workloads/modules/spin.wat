;; A tight loop with no calls at all: kill must stop it anyway.
(module
  (memory (export "memory") 1)
  (func (export "_start")
    (loop $forever (br $forever))))
