//! Dense `f32` tensors, owned and borrowed, always C-contiguous.

use crate::PluginError;

/// Number of elements of `shape`, or `None` on overflow.
pub(crate) fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// An owned, C-contiguous `f32` tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: Vec<f32>,
}

impl Tensor {
    /// A tensor of `shape` holding `data`; fails when the lengths disagree.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Tensor, PluginError> {
        match element_count(&shape) {
            Some(n) if n == data.len() => Ok(Tensor { shape, data }),
            _ => Err(PluginError::invalid_argument(format!(
                "tensor of shape {shape:?} cannot hold {} values",
                data.len()
            ))),
        }
    }

    /// A tensor of zeros.
    pub fn zeros(shape: Vec<usize>) -> Result<Tensor, PluginError> {
        let n = element_count(&shape)
            .ok_or_else(|| PluginError::invalid_argument(format!("shape {shape:?} overflows")))?;
        Ok(Tensor {
            shape,
            data: vec![0.0; n],
        })
    }

    /// Dimension sizes.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Values in row-major order.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// Mutable values in row-major order.
    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// The values, consuming the tensor.
    pub fn into_data(self) -> Vec<f32> {
        self.data
    }

    /// A borrowed view.
    pub fn view(&self) -> TensorRef<'_> {
        TensorRef {
            shape: &self.shape,
            data: &self.data,
        }
    }
}

/// A borrowed, C-contiguous `f32` tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TensorRef<'a> {
    shape: &'a [usize],
    data: &'a [f32],
}

impl<'a> TensorRef<'a> {
    /// A view of `data` as `shape`; fails when the lengths disagree.
    pub fn new(shape: &'a [usize], data: &'a [f32]) -> Result<TensorRef<'a>, PluginError> {
        match element_count(shape) {
            Some(n) if n == data.len() => Ok(TensorRef { shape, data }),
            _ => Err(PluginError::invalid_argument(format!(
                "tensor of shape {shape:?} cannot hold {} values",
                data.len()
            ))),
        }
    }

    /// Dimension sizes.
    pub fn shape(&self) -> &'a [usize] {
        self.shape
    }

    /// Values in row-major order.
    pub fn data(&self) -> &'a [f32] {
        self.data
    }

    /// An owned copy.
    pub fn to_owned(&self) -> Tensor {
        Tensor {
            shape: self.shape.to_vec(),
            data: self.data.to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_must_agree() {
        assert!(Tensor::new(vec![2, 3], vec![0.0; 6]).is_ok());
        assert!(Tensor::new(vec![2, 3], vec![0.0; 5]).is_err());
        assert!(Tensor::zeros(vec![usize::MAX, 2]).is_err());
        let data = [1.0f32; 4];
        assert!(TensorRef::new(&[2, 2], &data).is_ok());
        assert!(TensorRef::new(&[3], &data).is_err());
    }
}
